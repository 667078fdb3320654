package listener

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// otelCollector is an OpenTelemetry collector service and an HTTP
// service for the client to call.
const otelCollector = client + `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  ports: [{number: 4317, name: grpc-otlp, protocol: GRPC}]
  resolution: DNS
`

// otelMesh selects the "otel" opentelemetry provider by default, with 10%
// sampling.
func otelMesh(m *meshconfig.MeshConfig) {
	m.ExtensionProviders = []*meshconfig.MeshConfig_ExtensionProvider{
		{Name: "zipkin", Provider: &meshconfig.MeshConfig_ExtensionProvider_Zipkin{Zipkin: &meshconfig.MeshConfig_ExtensionProvider_ZipkinTracingProvider{
			Service: "zipkin.istio-system.svc.cluster.local", Port: 9411}}},
		{Name: "otel", Provider: &meshconfig.MeshConfig_ExtensionProvider_Opentelemetry{Opentelemetry: &meshconfig.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider{
			Service: "otel-collector.observability.svc.cluster.local", Port: 4317}}},
	}
	m.DefaultProviders = &meshconfig.MeshConfig_DefaultProviders{Tracing: []string{"otel"}}
	m.DefaultConfig = &meshconfig.ProxyConfig{Tracing: &meshconfig.Tracing{Sampling: 10}}
}

func TestTracingFromMeshConfig(t *testing.T) {
	const otelCluster = "outbound|4317||otel-collector.observability.svc.cluster.local"
	for _, tc := range []struct {
		name     string
		mesh     func(*meshconfig.MeshConfig)
		sampling float64 // 0: no tracing
		cluster  string  // "": no provider
	}{
		{name: "default: off", mesh: func(*meshconfig.MeshConfig) {}},
		{name: "enableTracing: Istio's 1%", mesh: func(m *meshconfig.MeshConfig) { m.EnableTracing = true }, sampling: 1},
		{name: "enableTracing, sampling above 100", mesh: func(m *meshconfig.MeshConfig) {
			m.EnableTracing = true
			m.DefaultConfig = &meshconfig.ProxyConfig{Tracing: &meshconfig.Tracing{Sampling: 250}}
		}, sampling: 1},
		{name: "opentelemetry default provider", mesh: otelMesh, sampling: 10, cluster: otelCluster},
		{name: "provider as namespace/host", mesh: func(m *meshconfig.MeshConfig) {
			otelMesh(m)
			m.ExtensionProviders[1].GetOpentelemetry().Service = "observability/otel-collector.observability.svc.cluster.local"
			m.DefaultConfig = nil
		}, sampling: 1, cluster: otelCluster},
		{name: "unknown collector service: none", mesh: func(m *meshconfig.MeshConfig) {
			otelMesh(m)
			m.ExtensionProviders[1].GetOpentelemetry().Port = 4318
		}},
		{name: "zipkin provider: not supported, none", mesh: func(m *meshconfig.MeshConfig) {
			otelMesh(m)
			m.DefaultProviders.Tracing = []string{"zipkin"}
		}},
		{name: "provider name not defined: sampling only", mesh: func(m *meshconfig.MeshConfig) {
			otelMesh(m)
			m.DefaultProviders.Tracing = []string{"nope"}
		}, sampling: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, proxy := fromYAML(otelCollector, "client-1", tc.mesh)(t)
			ls := Build(snap.Scope(proxy))
			validateAll(t, ls)
			var hcms []*hcmv3.HttpConnectionManager
			for _, l := range ls {
				hcms = append(hcms, unpack[*hcmv3.HttpConnectionManager](t, l)...)
			}
			if len(hcms) == 0 {
				t.Fatal("no HTTP connection managers")
			}
			for _, h := range hcms {
				tr := h.GetTracing()
				if tc.sampling == 0 {
					if tr != nil {
						t.Fatalf("%s: tracing %v, want none", h.GetStatPrefix(), tr)
					}
					continue
				}
				if tr.GetRandomSampling().GetValue() != tc.sampling || tr.GetClientSampling().GetValue() != 100 || tr.GetOverallSampling().GetValue() != 100 {
					t.Fatalf("%s: sampling %v", h.GetStatPrefix(), tr)
				}
				if tc.cluster == "" {
					if tr.GetProvider() != nil {
						t.Fatalf("%s: provider %v, want none", h.GetStatPrefix(), tr.GetProvider())
					}
					continue
				}
				var oc tracev3.OpenTelemetryConfig
				if tr.GetProvider().GetName() != "envoy.tracers.opentelemetry" || tr.GetProvider().GetTypedConfig().UnmarshalTo(&oc) != nil {
					t.Fatalf("%s: provider %v", h.GetStatPrefix(), tr.GetProvider())
				}
				eg := oc.GetGrpcService().GetEnvoyGrpc()
				if eg.GetClusterName() != tc.cluster || eg.GetAuthority() != "otel-collector.observability.svc.cluster.local" || oc.GetServiceName() != "client.default" {
					t.Errorf("%s: OpenTelemetryConfig %v", h.GetStatPrefix(), &oc)
				}
				var tags []string
				for _, ct := range tr.GetCustomTags() {
					tags = append(tags, ct.GetTag()+"="+ct.GetLiteral().GetValue())
				}
				if got := strings.Join(tags, " "); got != "istio.canonical_revision=v1 istio.canonical_service=client istio.mesh_id=unknown istio.namespace=default" {
					t.Errorf("custom tags %s", got)
				}
			}
		})
	}
}

// hcmTracing returns the tracing of every HCM of ls (for goldens' checks).
func hcmTracing(t *testing.T, ls []*listenerv3.Listener) []*hcmv3.HttpConnectionManager_Tracing {
	var out []*hcmv3.HttpConnectionManager_Tracing
	for _, l := range ls {
		for _, h := range unpack[*hcmv3.HttpConnectionManager](t, l) {
			out = append(out, h.GetTracing())
		}
	}
	return out
}
