package listener

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// localShop is the shop workload as `trellis up` runs it: its
// WorkloadEntry address is loopback, its sidecar owns that address's
// service ports through Sidecar ingress listeners without capture, and
// the application listens on 127.0.0.1 ports of its own.
const localShop = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.shop.svc.cluster.local]
  ports:
  - {number: 80, targetPort: 8080, name: http, protocol: HTTP}
  - {number: 9000, name: tcp-db, protocol: TCP}
  - {number: 7070, name: web}
  resolution: STATIC
  workloadSelector: {labels: {app: shop}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: shop-1, namespace: shop}
spec: {address: 127.0.0.10, labels: {app: shop, version: v1}, serviceAccount: shop}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: shop-1, namespace: shop}
spec:
  workloadSelector: {labels: {app: shop}}
  ingress:
  - port: {number: 8080, name: http, protocol: HTTP}
    bind: 127.0.0.10
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:18080
  - port: {number: 9000, name: tcp-db, protocol: TCP}
    bind: 127.0.0.10
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:19000
  - port: {number: 7070, name: web}
    bind: 127.0.0.10
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:17070
  - port: {number: 6060, name: http-debug, protocol: HTTP}
    defaultEndpoint: 127.0.0.1:16060
`

const ingressAuthz = `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-frontend, namespace: shop}
spec:
  selector: {matchLabels: {app: shop}}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]}]
`

// ingressListeners returns the shop proxy's listeners by name.
func ingressListeners(t *testing.T, yaml, sa string) map[string]*listenerv3.Listener {
	t.Helper()
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, yaml))
	p := gentest.Proxy("127.0.0.10", "shop", map[string]string{"app": "shop", "version": "v1"})
	p.ServiceAccount = sa
	ls, conflicts := BuildWithConflicts(snap.Scope(p))
	if len(conflicts) > 0 {
		t.Errorf("conflicts: %v", conflicts)
	}
	validateAll(t, ls)
	out := map[string]*listenerv3.Listener{}
	for _, l := range ls {
		out[l.GetName()] = l
	}
	return out
}

// TestSidecarIngressListeners: each captureMode NONE ingress port is a
// listener of its own at bind:port, inbound, without original_dst, whose
// chains are the ones virtualInbound would have had for the port under
// the workload's PeerAuthentication and identity. The ingress port
// without captureMode stays a chain of virtualInbound (named after the
// proxy's address, or the wildcard for a loopback one), and the
// services' own ports are no longer inbound ports at all, as in Istio.
func TestSidecarIngressListeners(t *testing.T) {
	var (
		mtlsHTTP  = conn{port: 8080, transport: "tls", alpn: []string{"istio-peer-exchange", "istio", "istio-http/1.1"}}
		plainHTTP = conn{port: 8080, transport: "raw_buffer", alpn: []string{"http/1.1"}}
		mtlsTCP   = conn{port: 9000, transport: "tls", alpn: []string{"istio-peer-exchange", "istio"}}
		plainTCP  = conn{port: 9000, transport: "raw_buffer"}
		mtlsSniff = conn{port: 7070, transport: "tls", alpn: []string{"istio-http/1.1"}}
		plainSnif = conn{port: 7070, transport: "raw_buffer", alpn: []string{"http/1.1"}}
	)
	type listenerExpect struct {
		listener string
		conn     conn
		want     string
	}
	cases := []struct {
		name   string
		yaml   string
		sa     string
		expect []listenerExpect
	}{
		{
			name: "ingress-permissive", yaml: localShop, sa: "shop",
			expect: []listenerExpect{
				{"127.0.0.10_8080", mtlsHTTP, "127.0.0.10_8080 tls hcm"},
				{"127.0.0.10_8080", plainHTTP, "127.0.0.10_8080 raw hcm"},
				{"127.0.0.10_9000", mtlsTCP, "127.0.0.10_9000 tls tcp"},
				{"127.0.0.10_9000", plainTCP, "127.0.0.10_9000 raw tcp"},
				{"127.0.0.10_7070", mtlsSniff, "127.0.0.10_7070 tls hcm"},
				{"127.0.0.10_7070", plainSnif, "127.0.0.10_7070 raw hcm"},
			},
		},
		{
			name: "ingress-strict", yaml: localShop + meshStrict, sa: "shop",
			expect: []listenerExpect{
				{"127.0.0.10_8080", mtlsHTTP, "127.0.0.10_8080 tls hcm"},
				{"127.0.0.10_8080", plainHTTP, ""},
				{"127.0.0.10_9000", mtlsTCP, "127.0.0.10_9000 tls tcp"},
				{"127.0.0.10_9000", plainTCP, ""},
				{"127.0.0.10_7070", plainSnif, ""},
			},
		},
		{
			// No identity: PERMISSIVE is plaintext only.
			name: "ingress-no-identity-permissive", yaml: localShop,
			expect: []listenerExpect{
				{"127.0.0.10_8080", mtlsHTTP, ""},
				{"127.0.0.10_8080", plainHTTP, "127.0.0.10_8080 raw hcm"},
				{"127.0.0.10_9000", plainTCP, "127.0.0.10_9000 raw tcp"},
			},
		},
		{
			// No identity, STRICT: TLS-only chains still (fail closed).
			name: "ingress-no-identity-strict", yaml: localShop + meshStrict,
			expect: []listenerExpect{
				{"127.0.0.10_8080", mtlsHTTP, "127.0.0.10_8080 tls hcm"},
				{"127.0.0.10_8080", plainHTTP, ""},
			},
		},
		{
			name: "ingress-authz", yaml: localShop + ingressAuthz, sa: "shop",
			expect: []listenerExpect{
				{"127.0.0.10_8080", mtlsHTTP, "127.0.0.10_8080 tls hcm"},
				{"127.0.0.10_9000", mtlsTCP, "127.0.0.10_9000 tls tcp"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ls := ingressListeners(t, tc.yaml, tc.sa)
			var golden []proto.Message
			for _, name := range []string{"127.0.0.10_7070", "127.0.0.10_8080", "127.0.0.10_9000", VirtualInboundListenerName} {
				l := ls[name]
				if l == nil {
					t.Fatalf("no listener %s; have %v", name, keys(ls))
				}
				golden = append(golden, l)
			}
			gentest.Golden(t, tc.name, golden...)
			for _, e := range tc.expect {
				if got := describe(selectChain(ls[e.listener], e.conn)); got != e.want {
					t.Errorf("%s %+v: chain %q, want %q", e.listener, e.conn, got, e.want)
				}
			}
			for _, name := range []string{"127.0.0.10_7070", "127.0.0.10_8080", "127.0.0.10_9000"} {
				checkIngressListener(t, ls[name])
			}
			// The captured ingress port (no captureMode) is in
			// virtualInbound; the loopback address is not global unicast,
			// so the chain is named after the wildcard.
			vi := ls[VirtualInboundListenerName]
			want := "0.0.0.0_6060 raw hcm"
			if strings.HasSuffix(tc.name, "strict") {
				want = "" // plaintext refused
			}
			if got := describe(selectChain(vi, conn{port: 6060, transport: "raw_buffer", alpn: []string{"http/1.1"}})); got != want {
				t.Errorf("virtualInbound 6060: %q, want %q", got, want)
			}
			for _, fc := range vi.GetFilterChains() {
				switch fc.GetFilterChainMatch().GetDestinationPort().GetValue() {
				case 8080, 9000, 7070:
					t.Errorf("virtualInbound has chain %s for a port its own listener serves", fc.GetName())
				}
			}
		})
	}
}

// checkIngressListener checks what every bound ingress listener shares.
func checkIngressListener(t *testing.T, l *listenerv3.Listener) {
	t.Helper()
	sa := l.GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.10" || l.GetName() != Name("127.0.0.10", sa.GetPortValue()) {
		t.Errorf("%s: address %v", l.GetName(), sa)
	}
	if l.GetBindToPort() != nil && !l.GetBindToPort().GetValue() {
		t.Errorf("%s: bind_to_port false", l.GetName())
	}
	if l.GetUseOriginalDst().GetValue() {
		t.Errorf("%s: use_original_dst", l.GetName())
	}
	if l.GetTrafficDirection() != corev3.TrafficDirection_INBOUND {
		t.Errorf("%s: direction %v", l.GetName(), l.GetTrafficDirection())
	}
	for _, f := range l.GetListenerFilters() {
		if f.GetName() == originalDstFilter {
			t.Errorf("%s: has original_dst: nothing restores a destination on a bound port", l.GetName())
		}
	}
	for _, fc := range l.GetFilterChains() {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != sa.GetPortValue() {
			t.Errorf("%s/%s: destination port %v", l.GetName(), fc.GetName(), fc.GetFilterChainMatch().GetDestinationPort())
		}
		cfg := fc.GetMetadata().GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
		if cfg != "/apis/networking.istio.io/v1/namespaces/shop/sidecar/shop-1" {
			t.Errorf("%s/%s: config metadata %q", l.GetName(), fc.GetName(), cfg)
		}
	}
}

// TestSidecarIngressAuthz: the RBAC filters of the workload's
// AuthorizationPolicies lead the ingress listeners' HCMs and TCP chains,
// exactly as on virtualInbound.
func TestSidecarIngressAuthz(t *testing.T) {
	ls := ingressListeners(t, localShop+ingressAuthz, "shop")
	for _, name := range []string{"127.0.0.10_8080", "127.0.0.10_9000", "127.0.0.10_7070"} {
		for _, fc := range ls[name].GetFilterChains() {
			fs := fc.GetFilters()
			if fs[0].GetName() == httpConnectionManagerFilter {
				h := &hcmv3.HttpConnectionManager{}
				if err := fs[0].GetTypedConfig().UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				if first := h.GetHttpFilters()[0].GetName(); first != "envoy.filters.http.rbac" {
					t.Errorf("%s/%s: first HTTP filter %q", name, fc.GetName(), first)
				}
				if want := "inbound|" + RouteName(ls[name].GetAddress().GetSocketAddress().GetPortValue()) + "||"; h.GetRds().GetRouteConfigName() != want {
					t.Errorf("%s/%s: RDS %q, want %q", name, fc.GetName(), h.GetRds().GetRouteConfigName(), want)
				}
				continue
			}
			if fs[0].GetName() != "envoy.filters.network.rbac" {
				t.Errorf("%s/%s: first network filter %q", name, fc.GetName(), fs[0].GetName())
			}
		}
	}
}

// TestSidecarIngressBindDefaults: without bind, a NONE ingress listener
// binds the proxy's global unicast address; DEFAULT capture on a proxy
// with interception mode NONE binds too. A loopback-only proxy binds the
// wildcard.
func TestSidecarIngressBindDefaults(t *testing.T) {
	const yaml = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: vm, namespace: shop}
spec:
  ingress:
  - port: {number: 8080, name: http, protocol: HTTP}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:18080
  - port: {number: 9000, name: tcp, protocol: TCP}
    defaultEndpoint: 127.0.0.1:19000
`
	for _, tc := range []struct {
		name, ip, interception string
		want                   []string
	}{
		{"pod IP", "10.0.3.1", "", []string{"10.0.3.1_8080"}},
		{"interception NONE", "10.0.3.1", "NONE", []string{"10.0.3.1_8080", "10.0.3.1_9000"}},
		{"loopback", "127.0.0.10", "", []string{"0.0.0.0_8080"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := gentest.NewSnapshot(nil, gentest.YAML(t, yaml))
			p := gentest.Proxy(tc.ip, "shop", nil)
			if tc.interception != "" {
				p.Metadata["INTERCEPTION_MODE"] = tc.interception
			}
			var got []string
			for _, l := range Build(snap.Scope(p)) {
				if l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND && l.GetName() != VirtualInboundListenerName {
					got = append(got, l.GetName())
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ingress listeners %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("ingress listeners %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func keys(m map[string]*listenerv3.Listener) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
