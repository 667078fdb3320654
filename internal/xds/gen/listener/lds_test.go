package listener

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// scenario builds the snapshot of cfgs and the sidecar of one of its
// WorkloadEntries (at the entry's address, with its labels).
func scenario(t testing.TB, mesh *meshconfig.MeshConfig, cfgs []config.Config, workload string) (*model.Snapshot, *model.Proxy) {
	t.Helper()
	snap := gentest.NewSnapshot(mesh, cfgs)
	for _, c := range cfgs {
		if c.Kind == schema.WorkloadEntry && c.Name == workload {
			we := c.Spec.(*networking.WorkloadEntry)
			return snap, gentest.Proxy(we.GetAddress(), c.Namespace, we.GetLabels())
		}
	}
	t.Fatalf("no WorkloadEntry %q", workload)
	return nil, nil
}

// bookinfo is the shared Bookinfo fixture (ServiceEntries and
// WorkloadEntries) with Istio's unchanged sample egress ServiceEntry, v1
// VirtualServices and DestinationRules.
func bookinfo(t testing.TB) []config.Config {
	return gentest.Files(t,
		gentest.Bookinfo(),
		gentest.Sample(t, "bookinfo/networking/egress-rule-google-apis.yaml"),
		gentest.Sample(t, "bookinfo/networking/virtual-service-all-v1.yaml"),
		gentest.Sample(t, "bookinfo/networking/destination-rule-all.yaml"),
	)
}

// client is a plain HTTP workload in namespace default, the proxy of most cases.
const client = `
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
spec: {address: 10.0.0.7, labels: {app: client, version: v1}, serviceAccount: client}
`

const tcpVIP = client + `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: postgres, namespace: db}
spec:
  hosts: [postgres.db.svc.cluster.local]
  addresses: [240.240.0.10]
  ports: [{number: 5432, name: tcp-postgres, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: postgres}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: postgres-1, namespace: db}
spec: {address: 10.0.1.5, labels: {app: postgres}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: postgres, namespace: db}
spec:
  host: postgres.db.svc.cluster.local
  trafficPolicy:
    connectionPool: {tcp: {idleTimeout: 1800s, maxConnectionDuration: 3600s}}
    loadBalancer: {consistentHash: {useSourceIp: true}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: db}
spec:
  hosts: [cache.db.svc.cluster.local]
  addresses: [10.20.0.0/16]
  ports: [{number: 7000, name: tcp-cache, protocol: TCP}]
  resolution: NONE
`

const tcpWeighted = client + `
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
kind: WorkloadEntry
metadata: {name: mysqldb-v2, namespace: db}
spec: {address: 10.0.1.11, labels: {app: mysqldb, version: v2}}
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
  - match: [{sourceLabels: {app: batch}}]          # not this proxy: skipped
    route: [{destination: {host: mysqldb, subset: v2}}]
  - match: [{sourceNamespace: other}]              # not this namespace: skipped
    route: [{destination: {host: mysqldb, subset: v2}}]
  - match: [{port: 3307}]                          # other port: skipped
    route: [{destination: {host: mysqldb, subset: v2}}]
  - match: [{destinationSubnets: [10.9.0.0/16, 10.8.0.1]}]
    route: [{destination: {host: mysqldb, subset: v2}}]
  - route:                                         # catch-all split
    - {destination: {host: mysqldb, subset: v1}, weight: 70}
    - {destination: {host: mysqldb, subset: v2}, weight: 30}
  - route: [{destination: {host: mysqldb, subset: v2}}]  # after the catch-all: unreachable
`

const tlsSNI = client + `
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
  - match: [{sniHosts: [auth.example.com], sourceLabels: {app: other}}]   # not this proxy
    route: [{destination: {host: auth.example.com}}]
  - match: [{sniHosts: [auth.example.com]}]
    route:
    - {destination: {host: auth.example.com}, weight: 90}
    - {destination: {host: egress.example.com, port: {number: 443}}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure}
spec:
  hosts: [secure.example.com]
  addresses: [240.240.0.30]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
`

const sniffed = `
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
metadata: {name: legacy}
spec:
  hosts: [legacy.default.svc.cluster.local]
  addresses: [240.240.0.40]
  ports: [{number: 7070, name: legacy}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: novip}
spec:
  hosts: [novip.example.com]
  ports: [{number: 7071, name: custom}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: headless}
spec:
  hosts: [headless.default.svc.cluster.local]
  ports: [{number: 9042, name: tcp-cql, protocol: TCP}]
  resolution: NONE
  endpoints: [{address: 10.0.3.1}, {address: 10.0.3.2}, {address: 10.0.0.9}]
`

const portConflicts = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inbound-a}
spec:
  hosts: [inbound-a.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inbound-b}
spec:
  hosts: [inbound-b.default.svc.cluster.local]
  ports: [{number: 8080, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-1}
spec: {address: 10.0.0.8, labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: http8000}
spec:
  hosts: [http8000.example.com]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp8000}
spec:
  hosts: [tcp8000.example.com]
  ports: [{number: 8000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcpa}
spec:
  hosts: [tcpa.example.com]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcpb}
spec:
  hosts: [tcpb.example.com]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo}
spec:
  hosts: [mongo.example.com]
  ports: [{number: 27017, name: mongo, protocol: MONGO}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web27017}
spec:
  hosts: [web27017.example.com]
  ports: [{number: 27017, name: http, protocol: HTTP}]
  resolution: DNS
`

type goldenCase struct {
	name  string
	build func(t testing.TB) (*model.Snapshot, *model.Proxy)
	check func(t *testing.T, ls []*listenerv3.Listener, conflicts []Conflict)
}

func fromYAML(yamlText, proxy string, mesh func(*meshconfig.MeshConfig)) func(t testing.TB) (*model.Snapshot, *model.Proxy) {
	return func(t testing.TB) (*model.Snapshot, *model.Proxy) {
		var m *meshconfig.MeshConfig
		if mesh != nil {
			m = model.DefaultMesh()
			mesh(m)
		}
		return scenario(t, m, gentest.YAML(t, yamlText), proxy)
	}
}

func bookinfoProxy(name string, extra string) func(t testing.TB) (*model.Snapshot, *model.Proxy) {
	return func(t testing.TB) (*model.Snapshot, *model.Proxy) {
		cfgs := bookinfo(t)
		if extra != "" {
			cfgs = append(cfgs, gentest.YAML(t, extra)...)
		}
		return scenario(t, nil, cfgs, name)
	}
}

const egressSidecar = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress:
  - hosts: [./reviews.default.svc.cluster.local, istio-system/*]
`

func registryOnly(m *meshconfig.MeshConfig) {
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{name: "bookinfo-productpage", build: bookinfoProxy("productpage-v1", "")},
		{name: "bookinfo-reviews-v2", build: bookinfoProxy("reviews-v2", "")},
		{name: "tcp-vip", build: fromYAML(tcpVIP, "client-1", nil)},
		{name: "tcp-weighted", build: fromYAML(tcpWeighted, "client-1", nil)},
		{name: "tls-sni", build: fromYAML(tlsSNI, "client-1", nil)},
		{name: "sniffed", build: fromYAML(sniffed, "self-1", nil)},
		{name: "registry-only", build: fromYAML(tcpVIP, "client-1", registryOnly), check: func(t *testing.T, ls []*listenerv3.Listener, conflicts []Conflict) {
			for _, l := range ls {
				for _, tp := range unpack[*tcpv3.TcpProxy](t, l) {
					if tp.GetCluster() == PassthroughCluster {
						t.Errorf("%s: REGISTRY_ONLY sidecar passes traffic through", l.GetName())
					}
				}
			}
		}},
		{name: "sidecar-egress", build: bookinfoProxy("productpage-v1", egressSidecar)},
		{name: "tracing-otel", build: fromYAML(otelCollector, "client-1", otelMesh), check: func(t *testing.T, ls []*listenerv3.Listener, _ []Conflict) {
			trs := hcmTracing(t, ls)
			for _, tr := range trs {
				if tr.GetProvider().GetName() != "envoy.tracers.opentelemetry" {
					t.Errorf("HCM without the OpenTelemetry tracer: %v", tr)
				}
			}
			if len(trs) == 0 {
				t.Error("no HCMs")
			}
		}},
		{name: "port-conflicts", build: fromYAML(portConflicts, "server-1", nil), check: func(t *testing.T, ls []*listenerv3.Listener, conflicts []Conflict) {
			var got []string
			for _, c := range conflicts {
				got = append(got, c.String())
			}
			want := []string{
				"outbound listener 0.0.0.0_9000: accepted tcpa.example.com (TCP), rejected tcpb.example.com (TCP)",
				"outbound listener 0.0.0.0_27017: accepted mongo.example.com (Mongo), rejected web27017.example.com (HTTP)",
				"inbound listener 0.0.0.0_8080: accepted inbound-a.default.svc.cluster.local (HTTP), rejected inbound-b.default.svc.cluster.local (TCP)",
			}
			if !slices.Equal(got, want) {
				t.Errorf("conflicts:\n got %q\nwant %q", got, want)
			}
			l := find(t, ls, "0.0.0.0_8000")
			if l.GetDefaultFilterChain() == nil || len(unpack[*hcmv3.HttpConnectionManager](t, l)) != 1 {
				t.Errorf("0.0.0.0_8000: want HTTP chain plus TCP default chain (sniffed merge)")
			}
		}},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			snap, proxy := tc.build(t)
			ls, conflicts := BuildWithConflicts(snap.Scope(proxy))
			validateAll(t, ls)
			msgs := make([]proto.Message, 0, len(ls))
			for _, l := range ls {
				msgs = append(msgs, l)
			}
			gentest.Golden(t, tc.name, msgs...)
			if tc.check != nil {
				tc.check(t, ls, conflicts)
			}
		})
	}
}

// TestDeterministic: the same input gives byte-identical resources, also
// when services arrive in another order.
func TestDeterministic(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			snap, proxy := tc.build(t)
			first := versions(t, Build(snap.Scope(proxy)))
			for i := 0; i < 3; i++ {
				if got := versions(t, Build(snap.Scope(proxy))); !slices.Equal(first, got) {
					t.Fatalf("run %d differs:\n%v\n%v", i, first, got)
				}
			}
			// Rebuild the snapshot from reversed services.
			svcs := slices.Clone(snap.Services())
			slices.Reverse(svcs)
			eps := map[model.ServiceKey][]*model.Endpoint{}
			for _, s := range svcs {
				e := slices.Clone(snap.Endpoints(s.Key()))
				slices.Reverse(e)
				eps[s.Key()] = e
			}
			rev := model.NewSnapshot(model.SnapshotInput{Version: "rev", Mesh: snap.Mesh, Services: svcs, Endpoints: eps, Configs: allConfigs(snap)})
			if got := versions(t, Build(rev.Scope(proxy))); !slices.Equal(first, got) {
				t.Fatalf("reversed input differs:\n%v\n%v", first, got)
			}
		})
	}
}

// allConfigs returns every config of a snapshot, newest first.
func allConfigs(s *model.Snapshot) []config.Config {
	var out []config.Config
	for _, sch := range schema.Istio().All() {
		out = append(out, s.Configs(sch.GroupKind)...)
	}
	slices.Reverse(out)
	return out
}

func versions(t testing.TB, ls []*listenerv3.Listener) []string {
	t.Helper()
	res, err := xds.Marshal(ls)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res {
		out = append(out, r.Name+"@"+r.Version)
	}
	return out
}

func find(t testing.TB, ls []*listenerv3.Listener, name string) *listenerv3.Listener {
	t.Helper()
	for _, l := range ls {
		if l.GetName() == name {
			return l
		}
	}
	t.Fatalf("no listener %q", name)
	return nil
}

func names(ls []*listenerv3.Listener) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.GetName())
	}
	return out
}

func TestSidecarEgressScoping(t *testing.T) {
	all, proxy := bookinfoProxy("productpage-v1", "")(t)
	scoped, _ := bookinfoProxy("productpage-v1", egressSidecar)(t)
	a, s := names(Build(all.Scope(proxy))), names(Build(scoped.Scope(proxy)))
	if len(s) >= len(a) {
		t.Errorf("Sidecar egress did not trim listeners: %v vs %v", s, a)
	}
	if slices.Contains(s, "0.0.0.0_443") || !slices.Contains(s, "0.0.0.0_9080") {
		t.Errorf("scoped listeners %v: want 0.0.0.0_9080 and no 0.0.0.0_443", s)
	}
}

func TestSidecarOutboundTrafficPolicyOverridesMesh(t *testing.T) {
	snap, proxy := fromYAML(client+`
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`, "client-1", nil)(t)
	vo := find(t, Build(snap.Scope(proxy)), VirtualOutboundListenerName)
	tps := unpack[*tcpv3.TcpProxy](t, vo)
	if got := tps[len(tps)-1].GetCluster(); got != BlackHoleCluster {
		t.Errorf("catch-all cluster = %q, want %q", got, BlackHoleCluster)
	}
}

func TestHTTPConnectionManagerMeshSettings(t *testing.T) {
	tests := []struct {
		name          string
		mesh          func(*meshconfig.MeshConfig)
		normalize     bool
		merge         bool
		escaped       hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
		accessLogPath string
		accessLogText string
	}{
		{name: "defaults", normalize: true, escaped: hcmv3.HttpConnectionManager_REJECT_REQUEST},
		{name: "none", mesh: func(m *meshconfig.MeshConfig) {
			m.PathNormalization = &meshconfig.MeshConfig_ProxyPathNormalization{Normalization: meshconfig.MeshConfig_ProxyPathNormalization_NONE}
		}, escaped: hcmv3.HttpConnectionManager_KEEP_UNCHANGED},
		{name: "merge slashes", mesh: func(m *meshconfig.MeshConfig) {
			m.PathNormalization = &meshconfig.MeshConfig_ProxyPathNormalization{Normalization: meshconfig.MeshConfig_ProxyPathNormalization_MERGE_SLASHES}
		}, normalize: true, merge: true, escaped: hcmv3.HttpConnectionManager_REJECT_REQUEST},
		{name: "decode and merge", mesh: func(m *meshconfig.MeshConfig) {
			m.PathNormalization = &meshconfig.MeshConfig_ProxyPathNormalization{Normalization: meshconfig.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES}
		}, normalize: true, merge: true, escaped: hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD},
		{name: "access log file", mesh: func(m *meshconfig.MeshConfig) { m.AccessLogFile = "/dev/stdout" },
			normalize: true, escaped: hcmv3.HttpConnectionManager_REJECT_REQUEST, accessLogPath: "/dev/stdout", accessLogText: "[%START_TIME%]"},
		{name: "access log format", mesh: func(m *meshconfig.MeshConfig) {
			m.AccessLogFile = "/tmp/a.log"
			m.AccessLogFormat = "%RESPONSE_CODE%"
		}, normalize: true, escaped: hcmv3.HttpConnectionManager_REJECT_REQUEST, accessLogPath: "/tmp/a.log", accessLogText: "%RESPONSE_CODE%\n"},
		{name: "access log json", mesh: func(m *meshconfig.MeshConfig) {
			m.AccessLogFile = "/dev/stdout"
			m.AccessLogEncoding = meshconfig.MeshConfig_JSON
		}, normalize: true, escaped: hcmv3.HttpConnectionManager_REJECT_REQUEST, accessLogPath: "/dev/stdout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, proxy := fromYAML(tcpVIP, "client-1", tc.mesh)(t)
			ls := Build(snap.Scope(proxy))
			validateAll(t, ls)
			for _, name := range []string{"0.0.0.0_8080", VirtualInboundListenerName} {
				for _, h := range unpack[*hcmv3.HttpConnectionManager](t, find(t, ls, name)) {
					if h.GetNormalizePath().GetValue() != tc.normalize || h.GetMergeSlashes() != tc.merge ||
						h.GetPathWithEscapedSlashesAction() != tc.escaped {
						t.Errorf("%s %s: normalize=%v merge=%v escaped=%v", name, h.GetStatPrefix(),
							h.GetNormalizePath().GetValue(), h.GetMergeSlashes(), h.GetPathWithEscapedSlashesAction())
					}
					if h.GetUseRemoteAddress().GetValue() || h.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
						t.Errorf("%s: use_remote_address/codec not as Istio's sidecar", name)
					}
					checkAccessLog(t, name, h.GetAccessLog(), tc.accessLogPath, tc.accessLogText)
				}
			}
			for _, tp := range unpack[*tcpv3.TcpProxy](t, find(t, ls, "240.240.0.10_5432")) {
				checkAccessLog(t, "240.240.0.10_5432", tp.GetAccessLog(), tc.accessLogPath, tc.accessLogText)
			}
		})
	}
}

func checkAccessLog(t *testing.T, where string, logs []*accesslogv3.AccessLog, path, text string) {
	t.Helper()
	if path == "" {
		if len(logs) != 0 {
			t.Errorf("%s: access log without accessLogFile", where)
		}
		return
	}
	if len(logs) != 1 {
		t.Fatalf("%s: %d access logs, want 1", where, len(logs))
	}
	var fal fileaccesslogv3.FileAccessLog
	if err := logs[0].GetTypedConfig().UnmarshalTo(&fal); err != nil {
		t.Fatal(err)
	}
	if fal.GetPath() != path {
		t.Errorf("%s: path %q, want %q", where, fal.GetPath(), path)
	}
	got := fal.GetLogFormat().GetTextFormatSource().GetInlineString()
	if text != "" && !strings.HasPrefix(got, text) {
		t.Errorf("%s: format %q, want prefix %q", where, got, text)
	}
	if text == "" && fal.GetLogFormat().GetJsonFormat() == nil {
		t.Errorf("%s: want JSON format", where)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{RouteName(9080), "9080"},
		{SniffedRouteName("legacy.default.svc.cluster.local", 7070), "legacy.default.svc.cluster.local:7070"},
		{InboundRouteName(9080), "inbound|9080||"},
		{Name("0.0.0.0", 15001), "0.0.0.0_15001"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestOnlySidecars(t *testing.T) {
	snap, proxy := fromYAML(client, "client-1", nil)(t)
	gw := *proxy
	gw.Type = model.Router
	if ls := Build(snap.Scope(&gw)); ls != nil {
		t.Errorf("router got %d listeners", len(ls))
	}
}

// BenchmarkListeners1000: 1000 services of mixed protocols, a proxy that
// serves one of them.
func BenchmarkListeners1000(b *testing.B) {
	var y bytes.Buffer
	protos := []string{"HTTP", "TCP", "TLS", "GRPC", "", "HTTP2", "MONGO", "HTTPS"}
	for i := 0; i < 1000; i++ {
		p := protos[i%len(protos)]
		port := 8000 + i%50
		addr := ""
		if i%3 != 0 {
			addr = fmt.Sprintf("addresses: [240.%d.%d.%d]", 1+i/65536, (i/256)%256, i%256)
		}
		fmt.Fprintf(&y, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc%d, namespace: ns%d}
spec:
  hosts: [svc%d.ns%d.svc.cluster.local]
  %s
  ports: [{number: %d, name: p%d, protocol: %q}, {number: 9090, name: http-metrics, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: svc%d}}
`, i, i%10, i, i%10, addr, port, i, p, i)
	}
	y.WriteString(`---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc1-1, namespace: ns1}
spec: {address: 10.1.0.1, labels: {app: svc1}}
`)
	snap, proxy := fromYAML(y.String(), "svc1-1", nil)(b)
	sc := snap.Scope(proxy)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ls := Build(sc); len(ls) < 100 {
			b.Fatalf("only %d listeners", len(ls))
		}
	}
}

// TestCapturePortsNotReused: a service on 15001 or an endpoint port 15006
// must not produce a listener or chain that clashes with the capture ones.
func TestCapturePortsNotReused(t *testing.T) {
	snap, proxy := fromYAML(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: odd}
spec:
  hosts: [odd.default.svc.cluster.local]
  ports: [{number: 15001, name: tcp, protocol: TCP}, {number: 80, name: http, protocol: HTTP, targetPort: 15006}]
  resolution: STATIC
  workloadSelector: {labels: {app: odd}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: odd-1}
spec: {address: 10.0.0.5, labels: {app: odd}}
`, "odd-1", nil)(t)
	ls := Build(snap.Scope(proxy))
	validateAll(t, ls)
	if slices.Contains(names(ls), "0.0.0.0_15001") {
		t.Error("outbound listener on the outbound capture port")
	}
	n := 0
	for _, fc := range find(t, ls, VirtualInboundListenerName).GetFilterChains() {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == 15006 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d chains match port 15006, want only the blackhole", n)
	}
}
