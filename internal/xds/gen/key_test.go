package gen

import (
	"bytes"
	"testing"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// mtlsInputs: a workload-selected STRICT PeerAuthentication in namespace
// shop; everything else PERMISSIVE.
const mtlsInputs = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict-shop, namespace: shop}
spec:
  selector: {matchLabels: {app: shop}}
  mtls: {mode: STRICT}
`

// TestKeyCoversMTLSInputs: proxies that differ only in an input the mTLS
// generation reads must neither share a cache key nor a cached result, and
// proxies that differ in nothing the generators read must share both.
func TestKeyCoversMTLSInputs(t *testing.T) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, mtlsInputs))
	base := func() *model.Proxy {
		p := gentest.Proxy("10.9.9.9", "shop", map[string]string{"app": "shop"})
		p.ServiceAccount = "shop"
		return p
	}
	cases := []struct {
		name string
		// prep edits both proxies, change only the second.
		prep, change func(p *model.Proxy)
		same         bool
	}{
		{name: "labels select a PeerAuthentication", change: func(p *model.Proxy) { p.Labels = map[string]string{"app": "cart"} }},
		{
			name:   "no service account: no identity (PERMISSIVE)",
			prep:   func(p *model.Proxy) { p.Labels = map[string]string{"app": "cart"} },
			change: func(p *model.Proxy) { p.ServiceAccount = "" },
		},
		{name: "namespace", change: func(p *model.Proxy) { p.Namespace = "other" }},
		{name: "only the node name", same: true, change: func(p *model.Proxy) {
			p.Name, p.ID = "shop-1.shop", "sidecar~10.9.9.9~shop-1.shop~shop.svc.cluster.local"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			if tc.prep != nil {
				tc.prep(a)
				tc.prep(b)
			}
			tc.change(b)
			ka := KeyFor(snap, a, xds.ListenerType, nil)
			kb := KeyFor(snap, b, xds.ListenerType, nil)
			if (ka == kb) != tc.same {
				t.Fatalf("keys equal = %v, want %v", ka == kb, tc.same)
			}
			g := New()
			ra, err := g.Generate(snap, a, xds.ListenerType, nil)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := g.Generate(snap, b, xds.ListenerType, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The uncached outputs prove the input matters (or not).
			ua, _ := Build(snap, a, xds.ListenerType, nil)
			ub, _ := Build(snap, b, xds.ListenerType, nil)
			if sameResources(ua, ub) != tc.same {
				t.Fatalf("uncached outputs equal = %v, want %v", !tc.same, tc.same)
			}
			if !sameResources(ra, ua) || !sameResources(rb, ub) {
				t.Fatal("cached result differs from a fresh build: the key misses an input")
			}
		})
	}
}

func sameResources(a, b []xds.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Body.GetValue(), b[i].Body.GetValue()) {
			return false
		}
	}
	return true
}
