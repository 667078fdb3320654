package route

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// build generates, validates every resource, and fails on unexpected
// problems (wantErrs lists substrings each reported problem must contain one of).
func build(t *testing.T, f fixture, names []string, wantErrs ...string) []*routev3.RouteConfiguration {
	t.Helper()
	sc := f.scope(t)
	rcs, err := BuildWithErrors(sc, names)
	checkErrs(t, err, wantErrs)
	if len(rcs) != len(names) {
		t.Fatalf("got %d route configurations for %d names", len(rcs), len(names))
	}
	for i, rc := range rcs {
		if rc.GetName() != names[i] {
			t.Errorf("configuration %d is named %q, want %q", i, rc.GetName(), names[i])
		}
		validate(t, rc)
	}
	return rcs
}

func checkErrs(t *testing.T, err error, want []string) {
	t.Helper()
	var got []string
	if err != nil {
		got = strings.Split(err.Error(), "\n")
	}
	for _, g := range got {
		ok := false
		for _, w := range want {
			ok = ok || strings.Contains(g, w)
		}
		if !ok {
			t.Errorf("unexpected problem: %s", g)
		}
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("expected a problem containing %q; got %q", w, got)
		}
	}
}

// TestBookinfoGolden generates the routes a productpage sidecar gets for
// each networking sample of Istio's Bookinfo (services from gentest's
// Bookinfo ServiceEntries).
func TestBookinfoGolden(t *testing.T) {
	dir := gentest.Sample(t, "bookinfo/networking")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		n++
		name := strings.TrimSuffix(e.Name(), ".yaml")
		t.Run(name, func(t *testing.T) {
			files := []string{gentest.Bookinfo(), filepath.Join(dir, "destination-rule-all.yaml")}
			if e.Name() != "destination-rule-all.yaml" {
				files = append(files, filepath.Join(dir, e.Name()))
			}
			f := fixture{files: files, labels: map[string]string{"app": "productpage", "version": "v1"}}
			names := []string{"9080"}
			if name == "egress-rule-google-apis" {
				names = []string{"80", "443", "9080"}
			}
			gentest.Golden(t, "bookinfo-"+name, messages(build(t, f, names))...)
		})
	}
	if n == 0 {
		t.Fatalf("no Bookinfo samples in %s", dir)
	}
}

// TestFocusedGolden covers every VirtualService HTTP field, one concern
// per fixture.
func TestFocusedGolden(t *testing.T) {
	svc := filepath.Join("testdata", "services.yaml")
	cases := []struct {
		name     string
		fixture  fixture
		names    []string
		wantErrs []string
	}{
		{name: "match", fixture: fixture{files: []string{svc, "testdata/match.yaml"}}, names: []string{"9080"}},
		{
			name:    "source",
			fixture: fixture{files: []string{svc, "testdata/source.yaml"}, labels: map[string]string{"app": "sleep", "version": "v1"}},
			names:   []string{"8080", "9090", "3306"},
		},
		{
			name:     "destinations",
			fixture:  fixture{files: []string{svc, "testdata/destinations.yaml"}},
			names:    []string{"9080"},
			wantErrs: []string{`"all-zero": every destination has weight 0`, `"no-destination": no destination`},
		},
		{
			name:     "redirect",
			fixture:  fixture{files: []string{svc, "testdata/redirect.yaml"}},
			names:    []string{"9080"},
			wantErrs: []string{`"bad-code": redirect code 399 is not supported`},
		},
		{name: "rewrite-retries", fixture: fixture{files: []string{svc, "testdata/rewrite_retries.yaml"}}, names: []string{"9080"}},
		{
			name:     "fault-cors",
			fixture:  fixture{files: []string{svc, "testdata/fault_cors.yaml"}},
			names:    []string{"9080"},
			wantErrs: []string{`"unsupported-delay": fault: only fixedDelay is supported`},
		},
		{name: "headers", fixture: fixture{files: []string{svc, "testdata/headers.yaml"}}, names: []string{"9080"}},
		{
			name:    "delegate",
			fixture: fixture{files: []string{svc, "testdata/delegate.yaml"}},
			names:   []string{"9080"},
			wantErrs: []string{
				"delegate default/nope not found",
				"delegation loop",
				"is not exported to namespace default",
				"has hosts, so it is not a delegate",
				`route "conflict" matches nothing the root route matches`,
			},
		},
		{name: "hash", fixture: fixture{files: []string{svc, "testdata/hash.yaml"}}, names: []string{"9080", "8080"}},
		{
			name:    "hosts",
			fixture: fixture{files: []string{svc, "testdata/hosts.yaml"}, ip: "10.1.0.9"},
			names: []string{
				"80", "9080", "7070", "sniffed.default.svc.cluster.local:7070",
				"inbound|9080||", "inbound|7070||", "unknown-name", "inbound|x||",
			},
		},
		{
			name:    "grpc-proxy",
			fixture: fixture{files: []string{svc, "testdata/rewrite_retries.yaml"}, generator: "grpc"},
			names:   []string{"9080"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gentest.Golden(t, tc.name, messages(build(t, tc.fixture, tc.names, tc.wantErrs...))...)
		})
	}
}

// TestDeterminism builds the same input many times, with configs and
// services handed over in different orders, and expects identical bytes.
func TestDeterminism(t *testing.T) {
	files := []string{"testdata/services.yaml", "testdata/match.yaml", "testdata/destinations.yaml", "testdata/headers.yaml", "testdata/hash.yaml", "testdata/hosts.yaml", "testdata/delegate.yaml"}
	cfgs := gentest.Files(t, files...)
	names := []string{"80", "9080", "8080", "7070", "inbound|9080||"}
	var want []byte
	for i := 0; i < 20; i++ {
		// Rotate the configs: the snapshot must impose its own order.
		k := i % len(cfgs)
		c := append(cfgs[k:len(cfgs):len(cfgs)], cfgs[:k]...)
		rcs := Build(fixture{ip: "10.1.0.9"}.scopeOf(c), names)
		var got []byte
		for _, rc := range rcs {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rc)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b...)
		}
		if i == 0 {
			want = got
			continue
		}
		if string(got) != string(want) {
			t.Fatalf("run %d produced different bytes from run 0", i)
		}
	}
}

// FuzzRouteNames feeds arbitrary requested names (they come from proxies)
// to the name parser and to Build: no panic, every name answered, and
// parsed names map back to themselves.
func FuzzRouteNames(f *testing.F) {
	for _, s := range []string{"9080", "09080", "reviews:9080", "[::1]:80", "inbound|9080||", "inbound|9080|", "inbound||||", ":80", "", "http_proxy"} {
		f.Add(s)
	}
	sc := fixture{files: []string{"testdata/services.yaml", "testdata/hosts.yaml"}, ip: "10.1.0.9"}.scope(f)
	f.Fuzz(func(t *testing.T, name string) {
		kind, host, port := parseRouteName(name)
		var back string
		switch kind {
		case outboundRoute:
			back = strconv.FormatUint(uint64(port), 10)
		case sniffedRoute:
			back = host + ":" + strconv.FormatUint(uint64(port), 10)
		case inboundRoute:
			back = model.ClusterName(model.Inbound, port, "", "")
		default:
			back = name
		}
		if back != name {
			t.Errorf("parseRouteName(%q) = %v %q %d, which names %q", name, kind, host, port, back)
		}
		rcs := Build(sc, []string{name})
		if len(rcs) != 1 || rcs[0].GetName() != name {
			t.Fatalf("Build(%q) = %d configurations", name, len(rcs))
		}
		validate(t, rcs[0])
	})
}
