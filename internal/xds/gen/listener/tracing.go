package listener

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/model"
)

// Tracing constants, Istio's.
const (
	openTelemetryTracer = "envoy.tracers.opentelemetry"
	// defaultTraceSampling is Istio's PILOT_TRACE_SAMPLING default (1%).
	defaultTraceSampling = 1.0
)

// tracing returns an HCM's tracing settings as Istio derives them from the
// mesh config when no Telemetry resource applies (Trellis has no Telemetry
// API yet):
//
//   - meshConfig.defaultProviders.tracing names a provider: the first name
//     is looked up in meshConfig.extensionProviders. An opentelemetry
//     provider whose service is in the registry gives the
//     envoy.tracers.opentelemetry tracer exporting over gRPC to the
//     service's outbound|port||host cluster, named "<app>.<namespace>" as
//     Istio names the proxy's service cluster. A provider of another kind
//     (zipkin, datadog, ...), or whose service is unknown, gives no tracing
//     (Istio logs a warning and does the same). A name that is not an
//     extension provider gives sampling without a provider, as Istio.
//   - otherwise meshConfig.enableTracing gives sampling without a provider
//     (Istio's legacy mode, where Envoy's bootstrap holds the tracer).
//   - otherwise none.
//
// Sampling: defaultConfig.tracing.sampling, else 1%; above 100, 1% (as
// Istio). Client and overall sampling are 100%. Istio's literal service
// tags are added (canonical service and revision, namespace, mesh id).
func (b *builder) tracing() *hcmv3.HttpConnectionManager_Tracing {
	names := b.mesh.GetDefaultProviders().GetTracing()
	if len(names) == 0 {
		if !b.mesh.GetEnableTracing() {
			return nil
		}
		return b.sampledTracing()
	}
	var provider *meshconfig.MeshConfig_ExtensionProvider
	for _, p := range b.mesh.GetExtensionProviders() {
		if p.GetName() == names[0] {
			provider = p
			break
		}
	}
	if provider == nil {
		return b.sampledTracing()
	}
	otel := provider.GetOpentelemetry()
	if otel == nil {
		return nil
	}
	cluster, host, ok := b.lookupCluster(otel.GetService(), otel.GetPort())
	if !ok {
		return nil
	}
	oc := &tracev3.OpenTelemetryConfig{
		ServiceName: b.serviceCluster(),
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}},
			Timeout:         otel.GetGrpc().GetTimeout(),
		},
	}
	t := b.sampledTracing()
	t.Provider = &tracev3.Tracing_Http{
		Name:       openTelemetryTracer,
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: toAny(oc)},
	}
	return t
}

// sampledTracing is tracing with Istio's sampling and service tags and no
// provider.
func (b *builder) sampledTracing() *hcmv3.HttpConnectionManager_Tracing {
	sampling := defaultTraceSampling
	if s := b.mesh.GetDefaultConfig().GetTracing().GetSampling(); s != 0 {
		sampling = s
		if sampling > 100 {
			sampling = defaultTraceSampling
		}
	}
	t := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:  &typev3.Percent{Value: 100},
		RandomSampling:  &typev3.Percent{Value: sampling},
		OverallSampling: &typev3.Percent{Value: 100},
		CustomTags:      b.serviceTags(),
	}
	if n := b.mesh.GetDefaultConfig().GetTracing().GetMaxPathTagLength(); n != 0 {
		t.MaxPathTagLength = wrapperspb.UInt32(n)
	}
	return t
}

// lookupCluster finds the outbound cluster of a provider's service,
// written "host" or "namespace/host", as Istio's LookupCluster: the
// service must exist and have the port.
func (b *builder) lookupCluster(service string, port uint32) (cluster, host string, ok bool) {
	ns, host, hasNS := strings.Cut(service, "/")
	if !hasNS {
		host, ns = service, ""
	}
	for _, svc := range b.snap.ServicesByHost(host) {
		if ns != "" && svc.Namespace != ns {
			continue
		}
		for _, p := range svc.Ports {
			if p.Number == port {
				return model.ClusterName(model.Outbound, port, "", host), host, true
			}
		}
	}
	return "", "", false
}

// serviceCluster is the proxy's service cluster as Istio's agent names it:
// "<canonical name>.<namespace>".
func (b *builder) serviceCluster() string {
	return b.canonicalService() + "." + b.proxy.Namespace
}

func (b *builder) canonicalService() string {
	l := b.proxy.Labels
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := l[k]; v != "" {
			return v
		}
	}
	return "unknown"
}

// serviceTags are Istio's literal span tags naming the proxy's workload.
func (b *builder) serviceTags() []*tracingv3.CustomTag {
	revision := "latest"
	for _, k := range []string{"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"} {
		if v := b.proxy.Labels[k]; v != "" {
			revision = v
			break
		}
	}
	meshID := b.mesh.GetDefaultConfig().GetMeshId()
	if meshID == "" {
		meshID = "unknown"
	}
	ns := b.proxy.Namespace
	if ns == "" {
		ns = "default"
	}
	literal := func(tag, v string) *tracingv3.CustomTag {
		return &tracingv3.CustomTag{Tag: tag, Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: v}}}
	}
	// Sorted by tag, as Istio sorts them.
	return []*tracingv3.CustomTag{
		literal("istio.canonical_revision", revision),
		literal("istio.canonical_service", b.canonicalService()),
		literal("istio.mesh_id", meshID),
		literal("istio.namespace", ns),
	}
}
