package route

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func hashOf(t *testing.T, policies string) *HashPolicy {
	t.Helper()
	tbl := compileJSON(t, oneVhost(`{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c","hash_policy":[`+policies+`]}}`))
	return tbl.Match(req("GET", "h", "/")).Action.(*Forward).Hash
}

func chain(vals ...string) uint64 {
	var h uint64
	for _, v := range vals {
		d := xxhash.NewWithSeed(h)
		_, _ = d.WriteString(v)
		h = d.Sum64()
	}
	return h
}

func rotl(h uint64) uint64 { return h<<1 | h>>63 }

func TestHash(t *testing.T) {
	src := netip.MustParseAddrPort("10.1.2.3:5555")
	cases := []struct {
		name, policies string
		r              *Request
		want           uint64
		ok             bool
	}{
		{"header", `{"header":{"header_name":"X-User"}}`, req("GET", "h", "/", "x-user", "jason"), xxhash.Sum64String("jason"), true},
		{"header multi-valued sorted", `{"header":{"header_name":"x-user"}}`, req("GET", "h", "/", "x-user", "b", "x-user", "a"), chain("a", "b"), true},
		{"header absent", `{"header":{"header_name":"x-user"}}`, req("GET", "h", "/"), 0, false},
		{"header rewrite", `{"header":{"header_name":"x-user","regex_rewrite":{"pattern":{"regex":"-.*"},"substitution":""}}}`,
			req("GET", "h", "/", "x-user", "jason-123"), xxhash.Sum64String("jason"), true},
		{"authority", `{"header":{"header_name":":authority"}}`, req("GET", "reviews", "/"), xxhash.Sum64String("reviews"), true},
		{"cookie", `{"cookie":{"name":"session"}}`, req("GET", "h", "/", "cookie", "a=b; session=xyz"), xxhash.Sum64String("xyz"), true},
		{"cookie absent without ttl", `{"cookie":{"name":"session"}}`, req("GET", "h", "/"), 0, false},
		{"query parameter", `{"query_parameter":{"name":"user"}}`, req("GET", "h", "/p?user=ann&user=bob"), xxhash.Sum64String("ann"), true},
		{"source ip", `{"connection_properties":{"source_ip":true}}`, &Request{Path: "/", Source: src}, xxhash.Sum64String("10.1.2.3"), true},
		{"combined", `{"header":{"header_name":"x-user"}},{"query_parameter":{"name":"q"}}`, req("GET", "h", "/?q=1", "x-user", "u"),
			rotl(xxhash.Sum64String("u")) ^ xxhash.Sum64String("1"), true},
		{"terminal stops", `{"header":{"header_name":"x-user"},"terminal":true},{"query_parameter":{"name":"q"}}`, req("GET", "h", "/?q=1", "x-user", "u"),
			xxhash.Sum64String("u"), true},
		{"terminal without value continues", `{"header":{"header_name":"x-user"},"terminal":true},{"query_parameter":{"name":"q"}}`, req("GET", "h", "/?q=1"),
			xxhash.Sum64String("1"), true},
		{"filter state", `{"filter_state":{"key":"k"}}`, &Request{Path: "/", FilterState: func(k string) (uint64, bool) { return 42, k == "k" }}, 42, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := hashOf(t, tc.policies).Hash(tc.r)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Hash = %#x, %v; want %#x, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestHashCookieGeneration(t *testing.T) {
	p := hashOf(t, `{"cookie":{"name":"session","ttl":"60s","path":"/","attributes":[{"name":"SameSite","value":"Strict"},{"name":"Secure"}]}}`)
	r := req("GET", "h", "/")
	r.Source = netip.MustParseAddrPort("10.0.0.1:4000")
	r.Local = netip.MustParseAddrPort("10.0.0.2:80")
	value := fmt.Sprintf("%016x", xxhash.Sum64String("10.0.0.1:400010.0.0.2:80"))
	h, ok, cookies := p.HashWithCookies(r, nil)
	if !ok || h != xxhash.Sum64String(value) {
		t.Errorf("generated hash %#x %v, want hash of %q", h, ok, value)
	}
	if len(cookies) != 1 {
		t.Fatalf("cookies %v, want one", cookies)
	}
	want := `session="` + value + `"; Max-Age=60; Path=/; SameSite=Strict; Secure; HttpOnly`
	if got := cookies[0].String(); got != want {
		t.Errorf("Set-Cookie %q, want %q", got, want)
	}
	// The same client presenting the cookie hashes the same.
	r2 := req("GET", "h", "/", "cookie", "session="+value)
	if h2, _ := p.Hash(r2); h2 != h {
		t.Errorf("presented cookie hashes %#x, generated %#x", h2, h)
	}
}
