package listener

import (
	"testing"

	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// TestTransparentVirtualListeners: a proxy whose INTERCEPTION_MODE is
// TPROXY gets transparent: true on virtualOutbound and virtualInbound and
// on no other listener; REDIRECT, NONE and no interception mode leave the
// field unset everywhere.
func TestTransparentVirtualListeners(t *testing.T) {
	const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  addresses: [10.88.0.10]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: tcp, protocol: TCP}, {number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.88.1.2}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: shop-1, namespace: shop, labels: {app: shop}}
spec:
  address: 10.0.3.1
  labels: {app: shop}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP, targetPort: 9000}]
  workloadSelector: {labels: {app: shop}}
`
	for _, tc := range []struct {
		interception string
		want         map[string]bool
	}{
		{"TPROXY", map[string]bool{VirtualOutboundListenerName: true, VirtualInboundListenerName: true}},
		{"REDIRECT", nil},
		{"NONE", nil},
		{"", nil},
	} {
		name := tc.interception
		if name == "" {
			name = "absent"
		}
		t.Run(name, func(t *testing.T) {
			snap := gentest.NewSnapshot(nil, gentest.YAML(t, yaml))
			p := gentest.Proxy("10.0.3.1", "shop", map[string]string{"app": "shop"})
			if tc.interception != "" {
				p.Metadata["INTERCEPTION_MODE"] = tc.interception
			}
			ls := Build(snap.Scope(p))
			validateAll(t, ls)
			if len(ls) < 3 {
				t.Fatalf("only %d listeners generated; the fixture should give outbound ones too", len(ls))
			}
			seen := map[string]bool{}
			for _, l := range ls {
				seen[l.GetName()] = true
				got := l.GetTransparent()
				switch {
				case tc.want[l.GetName()] && !got.GetValue():
					t.Errorf("%s: transparent %v, want true", l.GetName(), got)
				case !tc.want[l.GetName()] && got != nil:
					t.Errorf("%s: transparent %v, want unset", l.GetName(), got)
				}
			}
			for n := range tc.want {
				if !seen[n] {
					t.Errorf("listener %s not generated", n)
				}
			}
		})
	}
}
