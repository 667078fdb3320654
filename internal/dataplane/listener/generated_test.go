package listener

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

// generated returns the listeners the control plane's generator builds for
// the sidecar of WorkloadEntry workload in cfgs, by name.
func generated(t testing.TB, cfgs []config.Config, workload string) map[string]*listenerv3.Listener {
	t.Helper()
	snap := gentest.NewSnapshot(nil, cfgs)
	for _, c := range cfgs {
		if c.Kind != schema.WorkloadEntry || c.Name != workload {
			continue
		}
		we := c.Spec.(*networking.WorkloadEntry)
		ls := genlistener.Build(snap.Scope(gentest.Proxy(we.GetAddress(), c.Namespace, we.GetLabels())))
		out := make(map[string]*listenerv3.Listener, len(ls))
		for _, l := range ls {
			out[l.GetName()] = l
		}
		return out
	}
	t.Fatalf("no WorkloadEntry %q", workload)
	return nil
}

// sniffedYAML: a workload with an undeclared-protocol port (9000), a TCP
// port (9001), a gRPC port with another target port (9002 → 19002), and
// services it calls.
const sniffedYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: self}
spec:
  hosts: [self.default.svc.cluster.local]
  ports:
  - {number: 9000, name: auto}
  - {number: 9001, name: tcp, protocol: TCP}
  - {number: 9002, name: grpc, protocol: GRPC, targetPort: 19002}
  resolution: STATIC
  workloadSelector: {labels: {app: self}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: self-1}
spec: {address: 10.0.0.9, labels: {app: self}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: headless}
spec:
  hosts: [headless.default.svc.cluster.local]
  ports: [{number: 9042, name: tcp-cql, protocol: TCP}]
  resolution: NONE
  endpoints: [{address: 10.0.3.1}, {address: 10.0.3.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy}
spec:
  hosts: [legacy.default.svc.cluster.local]
  addresses: [240.240.0.40]
  ports: [{number: 7070, name: legacy}]
  resolution: STATIC
`

// tlsYAML: SNI routing of TLS egress, and a weighted TCP route with a
// destination-subnet match.
const tlsYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: client}
spec:
  hosts: [client.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-1}
spec: {address: 10.0.0.7, labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-tls}
spec:
  hosts: [api.example.com, auth.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress-gateway}
spec:
  hosts: [egress.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8443, name: tls-alt, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.example.com]
  tls:
  - match: [{sniHosts: [api.example.com], port: 443}]
    route: [{destination: {host: egress.example.com, port: {number: 8443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: auth}
spec:
  hosts: [auth.example.com]
  tls:
  - match: [{sniHosts: [auth.example.com]}]
    route:
    - {destination: {host: auth.example.com}, weight: 90}
    - {destination: {host: egress.example.com, port: {number: 443}}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mysqldb, namespace: db}
spec:
  hosts: [mysqldb.db.svc.cluster.local]
  addresses: [240.240.0.20]
  ports: [{number: 3306, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: mysqldb}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: mysqldb-v1, namespace: db}
spec: {address: 10.0.1.10, labels: {app: mysqldb, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mysqldb, namespace: db}
spec:
  host: mysqldb.db.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mysqldb, namespace: db}
spec:
  hosts: [mysqldb]
  tcp:
  - match: [{destinationSubnets: [10.9.0.0/16, 10.8.0.1]}]
    route: [{destination: {host: mysqldb, subset: v2}}]
  - route:
    - {destination: {host: mysqldb, subset: v1}, weight: 70}
    - {destination: {host: mysqldb, subset: v2}, weight: 30}
`

// probe is a connection to classify and the chain label it must get
// ("" for none: closed).
type probe struct {
	name string
	in   MatchInput
	want string
}

func raw(dst string, alpn ...string) MatchInput {
	return MatchInput{Destination: ap(dst), Source: ap("10.0.0.50:43210"), Transport: TransportRawBuffer, ALPN: alpn}
}

func tlsTo(dst, sni string) MatchInput {
	return MatchInput{Destination: ap(dst), Source: ap("10.0.0.50:43210"), Transport: TransportTLS, SNI: sni, ALPN: []string{"h2", "http/1.1"}}
}

func checkProbes(t *testing.T, l *listenerv3.Listener, probes []probe) *Listener {
	t.Helper()
	if l == nil {
		t.Fatal("listener not generated")
	}
	c := mustCompile(t, l)
	for _, p := range probes {
		if got := labelOf(c.Match(p.in)); got != p.want {
			t.Errorf("%s %s: chain %q, want %q", l.GetName(), p.name, got, p.want)
		}
	}
	return c
}

// filterOn reports which listener filters run for a destination port.
func filterOn(l *Listener, kind filterKind, port uint16) bool {
	for _, f := range l.filters {
		if f.kind == kind {
			return f.disabled == nil || !f.disabled.matches(port)
		}
	}
	return false
}

func TestGeneratedBookinfo(t *testing.T) {
	cfgs := gentest.Files(t, gentest.Bookinfo(), gentest.Sample(t, "bookinfo/networking/egress-rule-google-apis.yaml"))
	ls := generated(t, cfgs, "productpage-v1")
	ip := "10.10.0.1" // any destination: 0.0.0.0 listeners

	l := checkProbes(t, ls["0.0.0.0_9080"], []probe{
		{"HTTP/1.1", raw(ip+":9080", "http/1.1"), "hcm:9080"},
		{"h2c", raw(ip+":9080", "h2c"), "hcm:9080"},
		{"HTTP/1.0 is proxied as TCP", raw(ip+":9080", "http/1.0"), "tcp:PassthroughCluster"},
		{"not HTTP", raw(ip + ":9080"), "tcp:PassthroughCluster"},
		{"TLS", tlsTo(ip+":9080", "reviews"), "tcp:PassthroughCluster"},
	})
	if l.BindToPort() || !filterOn(l, kindTLSInspector, 9080) || !filterOn(l, kindHTTPInspector, 9080) {
		t.Errorf("0.0.0.0_9080: bind=%v, want inspectors on and no bind", l.BindToPort())
	}
	checkProbes(t, ls["0.0.0.0_443"], []probe{
		{"SNI of the ServiceEntry", tlsTo(ip+":443", "www.googleapis.com"), "tcp:outbound|443||www.googleapis.com"},
		{"other SNI", tlsTo(ip+":443", "evil.example.com"), "tcp:PassthroughCluster"},
		{"plain text", raw(ip + ":443"), "tcp:PassthroughCluster"},
	})

	vo := checkProbes(t, ls["virtualOutbound"], []probe{
		{"to 15001 itself", raw(ip + ":15001"), "tcp:BlackHoleCluster"},
		{"anything else", raw("93.184.216.34:8000"), "tcp:PassthroughCluster"},
	})
	if !vo.UseOriginalDst() || !vo.BindToPort() || vo.Address() != ap("0.0.0.0:15001") {
		t.Errorf("virtualOutbound: uod=%v bind=%v addr=%v", vo.UseOriginalDst(), vo.BindToPort(), vo.Address())
	}

	pod := "10.0.0.11" // productpage-v1's address in the fixture does not matter: 0.0.0.0 chains
	vi := checkProbes(t, ls["virtualInbound"], []probe{
		{"to 15006 itself", raw(pod + ":15006"), "tcp:BlackHoleCluster"},
		{"service port", raw(pod + ":9080"), "hcm:inbound|9080||"},
		{"undeclared port, HTTP", raw(pod+":7777", "http/1.1"), "hcm:inline"},
		{"undeclared port, TCP", raw(pod + ":7777"), "tcp:InboundPassthroughCluster"},
	})
	if filterOn(vi, kindHTTPInspector, 9080) || filterOn(vi, kindHTTPInspector, 15006) || !filterOn(vi, kindHTTPInspector, 7777) {
		t.Error("virtualInbound: the HTTP inspector must be off on 9080 and 15006 and on elsewhere")
	}
	if filterOn(vi, kindTLSInspector, 7777) || !filterOn(vi, kindOriginalDst, 7777) {
		t.Error("virtualInbound: want original_dst and no TLS inspector (plaintext only)")
	}
	if !vi.continueOnTimeout || vi.filtersTimeout != 0 {
		t.Errorf("virtualInbound: continue=%v timeout=%v, want Istio's true/0s", vi.continueOnTimeout, vi.filtersTimeout)
	}
}

func TestGeneratedSniffedInbound(t *testing.T) {
	ls := generated(t, gentest.YAML(t, sniffedYAML), "self-1")
	pod := "10.0.0.9"
	vi := checkProbes(t, ls["virtualInbound"], []probe{
		{"sniffed port, HTTP/1.1", raw(pod+":9000", "http/1.1"), "hcm:inbound|9000||"},
		{"sniffed port, h2c", raw(pod+":9000", "h2c"), "hcm:inbound|9000||"},
		{"sniffed port, TCP", raw(pod + ":9000"), "tcp:inbound|9000||"},
		{"TCP port, even if it looks like HTTP", raw(pod+":9001", "http/1.1"), "tcp:inbound|9001||"},
		{"gRPC target port", raw(pod + ":19002"), "hcm:inbound|19002||"},
		{"service port is not the target port", raw(pod + ":9002"), "tcp:InboundPassthroughCluster"},
		{"TLS to an inbound port (no TLS chain)", tlsTo(pod+":9001", "x"), ""},
	})
	if !filterOn(vi, kindHTTPInspector, 9000) || filterOn(vi, kindHTTPInspector, 9001) || filterOn(vi, kindHTTPInspector, 19002) {
		t.Error("virtualInbound: the HTTP inspector must run on 9000 only among service ports")
	}
	checkProbes(t, ls["240.240.0.40_7070"], []probe{
		{"HTTP", raw("240.240.0.40:7070", "http/1.1"), "hcm:legacy.default.svc.cluster.local:7070"},
		{"TCP", raw("240.240.0.40:7070"), "tcp:outbound|7070||legacy.default.svc.cluster.local"},
	})
	checkProbes(t, ls["10.0.3.1_9042"], []probe{
		{"headless endpoint", raw("10.0.3.1:9042"), "tcp:outbound|9042||headless.default.svc.cluster.local"},
	})
}

func TestGeneratedTLSAndTCPRoutes(t *testing.T) {
	ls := generated(t, gentest.YAML(t, tlsYAML), "client-1")
	checkProbes(t, ls["0.0.0.0_443"], []probe{
		{"api", tlsTo("1.2.3.4:443", "api.example.com"), "tcp:outbound|8443||egress.example.com"},
		{"auth, weighted", tlsTo("1.2.3.4:443", "auth.example.com"), "tcp:outbound|443||auth.example.com=90,outbound|443||egress.example.com=10"},
		{"egress", tlsTo("1.2.3.4:443", "egress.example.com"), "tcp:outbound|443||egress.example.com"},
		{"upper-case SNI arrives lower-cased", tlsTo("1.2.3.4:443", "egress.example.com"), "tcp:outbound|443||egress.example.com"},
		{"unknown SNI", tlsTo("1.2.3.4:443", "other.example.com"), "tcp:PassthroughCluster"},
		{"no SNI", tlsTo("1.2.3.4:443", ""), "tcp:PassthroughCluster"},
	})
	checkProbes(t, ls["240.240.0.20_3306"], []probe{
		{"host in destinationSubnets", raw("10.8.0.1:3306"), "tcp:outbound|3306|v2|mysqldb.db.svc.cluster.local"},
		{"subnet", raw("10.9.200.1:3306"), "tcp:outbound|3306|v2|mysqldb.db.svc.cluster.local"},
		{"VIP: weighted default", raw("240.240.0.20:3306"), "tcp:outbound|3306|v1|mysqldb.db.svc.cluster.local=70,outbound|3306|v2|mysqldb.db.svc.cluster.local=30"},
	})
}
