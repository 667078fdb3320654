package listener

import (
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

const authzPolicies = client + `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`

// TestAuthzHooks: inbound HCMs start with the RBAC filters, inbound TCP
// chains with the network RBAC filters; outbound listeners get none.
func TestAuthzHooks(t *testing.T) {
	snap, proxy := fromYAML(authzPolicies, "client-1", nil)(t)
	ls := Build(snap.Scope(proxy))
	validateAll(t, ls)
	msgs := make([]proto.Message, 0, len(ls))
	for _, l := range ls {
		msgs = append(msgs, l)
	}
	gentest.Golden(t, "authz-inbound", msgs...)
	for _, l := range ls {
		inbound := l.GetName() == VirtualInboundListenerName
		for _, fc := range l.GetFilterChains() {
			fs := fc.GetFilters()
			if len(fs) == 0 || fc.GetName() == VirtualInboundBlackholeChain {
				continue
			}
			if fs[0].GetName() == httpConnectionManagerFilter {
				h := &hcmv3.HttpConnectionManager{}
				if err := fs[0].GetTypedConfig().UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				first := h.GetHttpFilters()[0].GetName()
				if inbound != (first == "envoy.filters.http.rbac") {
					t.Errorf("%s/%s: first HTTP filter %q", l.GetName(), fc.GetName(), first)
				}
				continue
			}
			if inbound != (fs[0].GetName() == "envoy.filters.network.rbac") {
				t.Errorf("%s/%s: first network filter %q", l.GetName(), fc.GetName(), fs[0].GetName())
			}
		}
	}
}
