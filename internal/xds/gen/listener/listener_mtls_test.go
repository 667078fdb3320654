package listener

import (
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// shop is one workload (namespace shop, service account shop) serving an
// HTTP port (8080), a TCP port (9000) and a sniffed port (7070), the proxy
// of the mTLS cases.
const shop = `
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
spec: {address: 10.0.3.1, labels: {app: shop, version: v1}, serviceAccount: shop}
`

const meshStrict = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`

const nsDisable = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: DISABLE}}
`

// workloadPorts: namespace PERMISSIVE; the shop workload STRICT except its
// TCP port (DISABLE) and port 3000, which no service declares (PERMISSIVE,
// a per-port passthrough chain).
const workloadPorts = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: shop, namespace: shop}
spec:
  selector: {matchLabels: {app: shop}}
  mtls: {mode: STRICT}
  portLevelMtls:
    9000: {mode: DISABLE}
    3000: {mode: PERMISSIVE}
`

type mtlsCase struct {
	name string
	yaml string
	mesh *meshconfig.MeshConfig
	// sa is the proxy's SERVICE_ACCOUNT ("" : no identity).
	sa string
	// expect maps connections to the chain that must take them ("" : none,
	// the connection is closed).
	expect []chainExpect
}

type chainExpect struct {
	conn conn
	want string // "<chain name> <tls|raw> <hcm|tcp>", or "" for no chain
}

func mtlsCases() []mtlsCase {
	var (
		mtlsHTTP  = conn{port: 8080, transport: "tls", alpn: []string{"istio-peer-exchange", "istio", "istio-http/1.1"}}
		plainHTTP = conn{port: 8080, transport: "raw_buffer", alpn: []string{"http/1.1"}}
		mtlsTCP   = conn{port: 9000, transport: "tls", alpn: []string{"istio-peer-exchange", "istio"}}
		plainTCP  = conn{port: 9000, transport: "raw_buffer"}
		appTLSTCP = conn{port: 9000, transport: "tls", alpn: []string{"h2"}}
		mtlsSniff = conn{port: 7070, transport: "tls", alpn: []string{"istio-http/1.1"}}
		mtlsOpaq  = conn{port: 7070, transport: "tls", alpn: []string{"istio-peer-exchange", "istio"}}
		plainSnif = conn{port: 7070, transport: "raw_buffer", alpn: []string{"http/1.1"}}
		plainOpaq = conn{port: 7070, transport: "raw_buffer"}
		plainElse = conn{port: 5555, transport: "raw_buffer"}
		mtlsElse  = conn{port: 5555, transport: "tls", alpn: []string{"istio-peer-exchange", "istio"}}
		plain3000 = conn{port: 3000, transport: "raw_buffer"}
		mtls3000  = conn{port: 3000, transport: "tls", alpn: []string{"istio-peer-exchange", "istio"}}
	)
	return []mtlsCase{
		{
			name: "mtls-permissive-default", yaml: shop, sa: "shop",
			expect: []chainExpect{
				{mtlsHTTP, "0.0.0.0_8080 tls hcm"}, {plainHTTP, "0.0.0.0_8080 raw hcm"},
				{mtlsTCP, "0.0.0.0_9000 tls tcp"}, {plainTCP, "0.0.0.0_9000 raw tcp"},
				{appTLSTCP, "0.0.0.0_9000 raw-tls tcp"},
				{mtlsSniff, "0.0.0.0_7070 tls hcm"}, {mtlsOpaq, "0.0.0.0_7070 tls tcp"},
				{plainSnif, "0.0.0.0_7070 raw hcm"}, {plainOpaq, "0.0.0.0_7070 raw tcp"},
				{plainElse, "virtualInbound raw tcp"}, {mtlsElse, "virtualInbound tls tcp"},
			},
		},
		{
			name: "mtls-mesh-strict", yaml: shop + meshStrict, sa: "shop",
			expect: []chainExpect{
				{mtlsHTTP, "0.0.0.0_8080 tls hcm"}, {plainHTTP, ""},
				{mtlsTCP, "0.0.0.0_9000 tls tcp"}, {plainTCP, ""}, {appTLSTCP, "0.0.0.0_9000 tls tcp"},
				{mtlsSniff, "0.0.0.0_7070 tls hcm"}, {mtlsOpaq, "0.0.0.0_7070 tls tcp"},
				{plainSnif, ""}, {plainOpaq, ""},
				{plainElse, ""}, {mtlsElse, "virtualInbound tls tcp"},
			},
		},
		{
			name: "mtls-namespace-disable", yaml: shop + meshStrict + nsDisable, sa: "shop",
			expect: []chainExpect{
				{mtlsHTTP, ""}, {plainHTTP, "0.0.0.0_8080 raw hcm"},
				{plainTCP, "0.0.0.0_9000 raw tcp"}, {mtlsTCP, ""},
				{plainSnif, "0.0.0.0_7070 raw hcm"}, {plainOpaq, "0.0.0.0_7070 raw tcp"}, {mtlsSniff, ""},
				{plainElse, "virtualInbound raw tcp"},
			},
		},
		{
			name: "mtls-workload-port-level", yaml: shop + meshStrict + workloadPorts, sa: "shop",
			expect: []chainExpect{
				{mtlsHTTP, "0.0.0.0_8080 tls hcm"}, {plainHTTP, ""},
				{plainTCP, "0.0.0.0_9000 raw tcp"}, {mtlsTCP, ""},
				{plainElse, ""}, {mtlsElse, "virtualInbound tls tcp"},
				{plain3000, "virtualInbound raw tcp"}, {mtls3000, "virtualInbound tls tcp"},
			},
		},
		{
			name: "mtls-no-identity-permissive", yaml: shop,
			expect: []chainExpect{
				{plainHTTP, "0.0.0.0_8080 raw hcm"}, {mtlsHTTP, ""}, {plainElse, "virtualInbound raw tcp"},
			},
		},
		{
			name: "mtls-no-identity-strict", yaml: shop + meshStrict,
			expect: []chainExpect{{plainHTTP, ""}, {mtlsHTTP, "0.0.0.0_8080 tls hcm"}},
		},
		{
			name: "mtls-trust-domain-aliases", yaml: shop + meshStrict, sa: "shop",
			mesh: func() *meshconfig.MeshConfig {
				m := model.DefaultMesh()
				m.TrustDomain = "prod.example"
				m.TrustDomainAliases = []string{"old.example", "prod.example", ""}
				m.MeshMTLS = &meshconfig.MeshConfig_TLSConfig{
					MinProtocolVersion: meshconfig.MeshConfig_TLSConfig_TLSV1_3,
					CipherSuites:       []string{"ECDHE-ECDSA-AES128-GCM-SHA256"},
				}
				return m
			}(),
			expect: []chainExpect{{mtlsHTTP, "0.0.0.0_8080 tls hcm"}},
		},
	}
}

// TestInboundMTLSGolden renders virtualInbound of the shop workload for each
// PeerAuthentication setup, validates everything in it, and checks which
// chain Envoy's filter chain matching would pick for typical connections.
func TestInboundMTLSGolden(t *testing.T) {
	for _, tc := range mtlsCases() {
		t.Run(tc.name, func(t *testing.T) {
			l := shopInbound(t, tc)
			validateAll(t, []*listenerv3.Listener{l})
			gentest.Golden(t, tc.name, l)
			for _, e := range tc.expect {
				if got := describe(selectChain(l, e.conn)); got != e.want {
					t.Errorf("%+v: chain %q, want %q", e.conn, got, e.want)
				}
			}
		})
	}
}

func shopInbound(t *testing.T, tc mtlsCase) *listenerv3.Listener {
	t.Helper()
	snap := gentest.NewSnapshot(tc.mesh, gentest.YAML(t, tc.yaml))
	p := gentest.Proxy("10.0.3.1", "shop", map[string]string{"app": "shop", "version": "v1"})
	p.ServiceAccount = tc.sa
	for _, l := range Build(snap.Scope(p)) {
		if l.GetName() == VirtualInboundListenerName {
			return l
		}
	}
	t.Fatal("no virtualInbound")
	return nil
}

// TestInboundTLSContext checks the DownstreamTlsContext field by field
// against Istio's BuildInboundTLS, for HTTP and TCP chains.
func TestInboundTLSContext(t *testing.T) {
	cases := mtlsCases()
	l := shopInbound(t, cases[len(cases)-1]) // trust domain aliases, meshMTLS
	var httpCtx, tcpCtx *tlsv3.DownstreamTlsContext
	for _, fc := range l.GetFilterChains() {
		ts := fc.GetTransportSocket()
		if ts == nil {
			continue
		}
		if ts.GetName() != "envoy.transport_sockets.tls" {
			t.Fatalf("%s: transport socket %q", fc.GetName(), ts.GetName())
		}
		ctx := &tlsv3.DownstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
			t.Fatal(err)
		}
		if fc.GetName() == "0.0.0.0_8080" {
			httpCtx = ctx
		}
		if fc.GetName() == "0.0.0.0_9000" {
			tcpCtx = ctx
		}
	}
	if httpCtx == nil || tcpCtx == nil {
		t.Fatal("no TLS chains on 8080 and 9000")
	}
	for name, c := range map[string]*tlsv3.DownstreamTlsContext{"http": httpCtx, "tcp": tcpCtx} {
		cc := c.GetCommonTlsContext()
		if !c.GetRequireClientCertificate().GetValue() {
			t.Errorf("%s: client certificate not required", name)
		}
		if got := cc.GetTlsCertificateSdsSecretConfigs(); len(got) != 1 || got[0].GetName() != "default" ||
			got[0].GetSdsConfig().GetApiConfigSource().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != "sds-grpc" {
			t.Errorf("%s: certificate SDS = %v", name, got)
		}
		cv := cc.GetCombinedValidationContext()
		if cv.GetValidationContextSdsSecretConfig().GetName() != "ROOTCA" {
			t.Errorf("%s: validation SDS = %v", name, cv.GetValidationContextSdsSecretConfig())
		}
		var prefixes []string
		for _, m := range cv.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
			if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
				t.Errorf("%s: SAN matcher type %v, want URI", name, m.GetSanType())
			}
			prefixes = append(prefixes, m.GetMatcher().GetPrefix())
		}
		if want := []string{"spiffe://prod.example/", "spiffe://old.example/"}; !slices.Equal(prefixes, want) {
			t.Errorf("%s: SAN prefixes %q, want %q", name, prefixes, want)
		}
		p := cc.GetTlsParams()
		if p.GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 || p.GetTlsMaximumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 {
			t.Errorf("%s: TLS versions %v-%v, want 1.3 (meshMTLS)", name, p.GetTlsMinimumProtocolVersion(), p.GetTlsMaximumProtocolVersion())
		}
		if !slices.Equal(p.GetCipherSuites(), []string{"ECDHE-ECDSA-AES128-GCM-SHA256"}) {
			t.Errorf("%s: ciphers %q", name, p.GetCipherSuites())
		}
	}
	if got := httpCtx.GetCommonTlsContext().GetAlpnProtocols(); !slices.Equal(got, []string{"h2", "http/1.1"}) {
		t.Errorf("http ALPN %q", got)
	}
	if got := tcpCtx.GetCommonTlsContext().GetAlpnProtocols(); !slices.Equal(got, []string{"istio-peer-exchange", "h2", "http/1.1"}) {
		t.Errorf("tcp ALPN %q", got)
	}
	// Default mesh: TLS 1.2 minimum and Istio's ciphers.
	def := shopInbound(t, cases[0])
	for _, fc := range def.GetFilterChains() {
		if fc.GetTransportSocket() == nil {
			continue
		}
		ctx := &tlsv3.DownstreamTlsContext{}
		if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
			t.Fatal(err)
		}
		p := ctx.GetCommonTlsContext().GetTlsParams()
		if p.GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_2 || len(p.GetCipherSuites()) != 6 {
			t.Errorf("%s: default params %v", fc.GetName(), p)
		}
	}
}

// TestInboundMTLSInspectors: a STRICT or PERMISSIVE port needs the TLS
// inspector; with everything DISABLE there is none.
func TestInboundMTLSInspectors(t *testing.T) {
	has := func(l *listenerv3.Listener) bool {
		for _, f := range l.GetListenerFilters() {
			if f.GetName() == tlsInspectorFilter {
				return true
			}
		}
		return false
	}
	cases := mtlsCases()
	if !has(shopInbound(t, cases[0])) {
		t.Error("permissive: TLS inspector missing")
	}
	if has(shopInbound(t, cases[2])) {
		t.Error("disable everywhere: TLS inspector present")
	}
}

// conn is what Envoy knows when it picks a filter chain: the original
// destination port, the transport protocol and the client's ALPN (from the
// TLS or HTTP inspector).
type conn struct {
	port      uint32
	transport string
	alpn      []string
}

// selectChain simulates Envoy's filter chain matching for the criteria the
// sidecar uses: the most specific destination_port, then transport_protocol
// (exact before empty), then application_protocols (any overlap before
// empty). Envoy does not backtrack: no chain at a level means no chain.
func selectChain(l *listenerv3.Listener, c conn) *listenerv3.FilterChain {
	chains := l.GetFilterChains()
	pick := func(in []*listenerv3.FilterChain, exact func(*listenerv3.FilterChainMatch) bool, unset func(*listenerv3.FilterChainMatch) bool) []*listenerv3.FilterChain {
		var ex, un []*listenerv3.FilterChain
		for _, fc := range in {
			switch m := fc.GetFilterChainMatch(); {
			case exact(m):
				ex = append(ex, fc)
			case unset(m):
				un = append(un, fc)
			}
		}
		if len(ex) > 0 {
			return ex
		}
		return un
	}
	chains = pick(chains,
		func(m *listenerv3.FilterChainMatch) bool { return m.GetDestinationPort().GetValue() == c.port },
		func(m *listenerv3.FilterChainMatch) bool { return m.GetDestinationPort() == nil })
	chains = pick(chains,
		func(m *listenerv3.FilterChainMatch) bool { return m.GetTransportProtocol() == c.transport },
		func(m *listenerv3.FilterChainMatch) bool { return m.GetTransportProtocol() == "" })
	chains = pick(chains,
		func(m *listenerv3.FilterChainMatch) bool {
			for _, a := range m.GetApplicationProtocols() {
				if slices.Contains(c.alpn, a) {
					return true
				}
			}
			return false
		},
		func(m *listenerv3.FilterChainMatch) bool { return len(m.GetApplicationProtocols()) == 0 })
	if len(chains) > 1 {
		panic("ambiguous filter chain match: Envoy would reject the listener")
	}
	if len(chains) == 0 {
		return nil
	}
	return chains[0]
}

// describe names a chain "<name> <tls|raw|raw-tls> <hcm|tcp>": tls when it
// terminates mTLS, raw-tls when it passes TLS through untouched.
func describe(fc *listenerv3.FilterChain) string {
	if fc == nil {
		return ""
	}
	sec := "raw"
	switch {
	case fc.GetTransportSocket() != nil:
		sec = "tls"
	case fc.GetFilterChainMatch().GetTransportProtocol() == "tls":
		sec = "raw-tls"
	}
	kind := "tcp"
	if fc.GetFilters()[len(fc.GetFilters())-1].GetName() == httpConnectionManagerFilter {
		kind = "hcm"
	}
	return fc.GetName() + " " + sec + " " + kind
}

// TestSelectChainDetectsAmbiguity guards the simulator.
func TestSelectChainDetectsAmbiguity(t *testing.T) {
	fc := &listenerv3.FilterChain{Name: "a", FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"}}
	l := &listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{fc, proto.Clone(fc).(*listenerv3.FilterChain)}}
	defer func() {
		if recover() == nil {
			t.Error("duplicate matches not reported")
		}
	}()
	selectChain(l, conn{transport: "tls"})
}
