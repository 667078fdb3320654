package model

import (
	"sort"
	"testing"
)

func TestResolveShortName(t *testing.T) {
	for _, tc := range []struct {
		name, host, ns, suffix, want string
	}{
		{"short name", "reviews", "bookinfo", "cluster.local", "reviews.bookinfo.svc.cluster.local"},
		{"custom suffix", "reviews", "bookinfo", "corp.example", "reviews.bookinfo.svc.corp.example"},
		{"name.namespace kept", "reviews.bookinfo", "default", "cluster.local", "reviews.bookinfo"},
		{"fqdn kept", "reviews.bookinfo.svc.cluster.local", "default", "cluster.local", "reviews.bookinfo.svc.cluster.local"},
		{"external kept", "api.example.com", "default", "cluster.local", "api.example.com"},
		{"wildcard kept", "*.example.com", "default", "cluster.local", "*.example.com"},
		{"star kept", "*", "default", "cluster.local", "*"},
		{"star-prefixed kept", "*reviews", "default", "cluster.local", "*reviews"},
		{"empty kept", "", "default", "cluster.local", ""},
		{"ipv4 kept", "10.0.0.1", "default", "cluster.local", "10.0.0.1"},
		{"ipv6 kept", "2001:db8::1", "default", "cluster.local", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResolveShortName(tc.host, tc.ns, tc.suffix); got != tc.want {
				t.Errorf("ResolveShortName(%q, %q, %q) = %q, want %q", tc.host, tc.ns, tc.suffix, got, tc.want)
			}
		})
	}
}

func TestHostMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"*", "a.example.com", true},
		{"*", "*.example.com", true},
		{"*", "*", true},
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "b.example.com", false},
		{"a.example.com", "*.example.com", false}, // an exact pattern does not cover a wildcard
		{"a.example.com", "*", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "*.a.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "example.com", false}, // the wildcard needs a label
		{"*.example.com", "aexample.com", false},
		{"*.example.com", "*.com", false},
		{"*.example.com", "*", false},
		{"*.a.example.com", "*.example.com", false},
		{"*.a.example.com", "b.example.com", false},
		{"*.local", "reviews.bookinfo.svc.cluster.local", true},
		{"*.svc.cluster.local", "reviews.bookinfo.svc.cluster.local", true},
		{"*.bookinfo.svc.cluster.local", "reviews.default.svc.cluster.local", false},
	} {
		if got := HostMatches(tc.pattern, tc.host); got != tc.want {
			t.Errorf("HostMatches(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
}

func TestHostsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "b.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"a.example.com", "*.example.com", true},
		{"*.example.com", "*.a.example.com", true},
		{"*.a.example.com", "*.example.com", true},
		{"*.example.com", "*.example.org", false},
		{"*", "a.example.com", true},
		{"a.example.com", "*", true},
		{"*.a.example.com", "b.example.com", false},
	} {
		if got := HostsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("HostsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestMoreSpecificHost(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		want bool
	}{
		{"exact before wildcard", "a.example.com", "*.example.com", true},
		{"wildcard after exact", "*.example.com", "a.example.com", false},
		{"short exact before long wildcard", "a.io", "*.very.long.example.com", true},
		{"longer wildcard first", "*.a.example.com", "*.example.com", true},
		{"shorter wildcard later", "*.example.com", "*.a.example.com", false},
		{"any wildcard before star", "*.com", "*", true},
		{"longer exact first", "aa.example.com", "a.example.com", true},
		{"same length: lexical", "a.example.com", "b.example.com", true},
		{"same length: lexical, reversed", "b.example.com", "a.example.com", false},
		{"equal", "a.example.com", "a.example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MoreSpecificHost(tc.a, tc.b); got != tc.want {
				t.Errorf("MoreSpecificHost(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestMoreSpecificHostSortsLookupOrder(t *testing.T) {
	hosts := []string{"*", "*.example.com", "b.example.com", "*.a.example.com", "a.example.com", "*.com"}
	sort.Slice(hosts, func(i, j int) bool { return MoreSpecificHost(hosts[i], hosts[j]) })
	want := []string{"a.example.com", "b.example.com", "*.a.example.com", "*.example.com", "*.com", "*"}
	for i := range want {
		if hosts[i] != want[i] {
			t.Fatalf("sorted = %q, want %q", hosts, want)
		}
	}
}
