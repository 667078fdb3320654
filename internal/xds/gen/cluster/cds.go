package cluster

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
)

// Names of the fixed clusters, as Istio names them.
const (
	BlackHoleCluster          = "BlackHoleCluster"
	PassthroughCluster        = "PassthroughCluster"
	InboundPassthroughCluster = "InboundPassthroughCluster"
)

// Istio's bind addresses: inbound passthrough traffic leaves from these so
// that the capture rules let it through instead of looping it back.
const (
	InboundPassthroughBindIPv4 = "127.0.0.6"
	InboundPassthroughBindIPv6 = "::6"
)

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key of
// envoy.extensions.upstreams.http.v3.HttpProtocolOptions.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// IstioMetadataKey is the filter_metadata key of Istio's cluster metadata.
const IstioMetadataKey = "istio"

// maxCleanupInterval is the longest duration Envoy accepts (~292 years),
// used to turn off host cleanup of inbound ORIGINAL_DST clusters.
const maxCleanupInterval = (math.MaxInt64 - 999999999) / int64(time.Second)

// Build returns the clusters of a sidecar, sorted by name: outbound
// clusters (and their subsets) for every service port visible in the
// scope, inbound clusters for the proxy's own service instances, and the
// fixed BlackHole, Passthrough and InboundPassthrough clusters. When two
// clusters get the same name, the first built wins, as in Istio.
func Build(sc *model.Scope) []*clusterv3.Cluster {
	b := newBuilder(sc)
	var out []*clusterv3.Cluster
	for _, svc := range sc.Services {
		dr := b.destinationRule(svc)
		for _, port := range svc.Ports {
			if port.Protocol == model.ProtocolUDP {
				continue
			}
			if c := b.outbound(svc, port, dr, nil); c != nil {
				out = append(out, c)
			}
			for _, ss := range dr.spec.GetSubsets() {
				if c := b.outbound(svc, port, dr, ss); c != nil {
					out = append(out, c)
				}
			}
		}
	}
	out = append(out, b.blackHole(), b.passthrough())
	out = append(out, b.inbound()...)
	out = append(out, b.inboundPassthrough())

	seen := make(map[string]bool, len(out))
	uniq := out[:0]
	for _, c := range out {
		if !seen[c.Name] {
			seen[c.Name] = true
			uniq = append(uniq, c)
		}
	}
	sort.Slice(uniq, func(i, j int) bool { return uniq[i].Name < uniq[j].Name })
	return uniq
}

// Outbound builds one outbound cluster of svc for port and subset ("" for
// the service-wide cluster), with the DestinationRule in force for the
// scope's proxy applied. It returns nil when Istio would emit no cluster: a
// subset the DestinationRule does not define, or a DNS cluster without
// endpoints.
func Outbound(sc *model.Scope, svc *model.Service, port model.Port, subset string) *clusterv3.Cluster {
	b := newBuilder(sc)
	dr := b.destinationRule(svc)
	if subset == "" {
		return b.outbound(svc, port, dr, nil)
	}
	for _, ss := range dr.spec.GetSubsets() {
		if ss.GetName() == subset {
			return b.outbound(svc, port, dr, ss)
		}
	}
	return nil
}

// BlackHole returns the cluster that drops traffic: STATIC without endpoints.
func BlackHole(mesh *meshconfig.MeshConfig) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 BlackHoleCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       connectTimeout(mesh),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

type builder struct {
	sc    *model.Scope
	mesh  *meshconfig.MeshConfig
	proxy *model.Proxy
	// ipv4, ipv6: which families the proxy's addresses use.
	ipv4, ipv6 bool
	// Memos for one build; a builder never outlives its call.
	sans      map[model.ServiceKey][]string
	nsMTLSOff map[string]bool
}

func newBuilder(sc *model.Scope) *builder {
	b := &builder{
		sc: sc, mesh: sc.Snapshot().Mesh, proxy: sc.Proxy(),
		sans: map[model.ServiceKey][]string{}, nsMTLSOff: map[string]bool{},
	}
	for _, ip := range b.proxy.IPAddresses {
		if a, err := netip.ParseAddr(ip); err == nil {
			if a.Is4() || a.Is4In6() {
				b.ipv4 = true
			} else {
				b.ipv6 = true
			}
		}
	}
	return b
}

// rule is the DestinationRule in force for a service, if any.
type rule struct {
	cfg  *config.Config
	spec *networking.DestinationRule
}

func (b *builder) destinationRule(svc *model.Service) rule {
	c, ok := b.sc.DestinationRule(svc.Hostname)
	if !ok {
		return rule{}
	}
	return rule{cfg: &c, spec: c.Spec.(*networking.DestinationRule)}
}

// wrapper carries a cluster and its HTTP protocol options until build, as
// Istio's clusterWrapper does: several steps edit the options.
type wrapper struct {
	c   *clusterv3.Cluster
	hpo *httpv3.HttpProtocolOptions
}

func (w *wrapper) options() *httpv3.HttpProtocolOptions {
	if w.hpo == nil {
		w.hpo = &httpv3.HttpProtocolOptions{}
	}
	return w.hpo
}

func (w *wrapper) build() *clusterv3.Cluster {
	if w.hpo != nil {
		if w.hpo.UpstreamProtocolOptions == nil {
			w.hpo.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
						HttpProtocolOptions: &core.Http1ProtocolOptions{},
					},
				},
			}
		}
		w.c.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptionsKey: mustAny(w.hpo)}
	}
	return w.c
}

// mustAny packs m deterministically. Marshalling a generated Envoy message
// built here cannot fail; a failure is a programming error.
func mustAny(m proto.Message) *anypb.Any {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("marshalling %s: %v", m.ProtoReflect().Descriptor().FullName(), err))
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
}

func (b *builder) outbound(svc *model.Service, port model.Port, dr rule, ss *networking.Subset) *clusterv3.Cluster {
	subset := ss.GetName()
	name := model.ClusterName(model.Outbound, port.Number, subset, svc.Hostname)
	typ := discoveryType(svc)
	passthroughSubset := ss.GetTrafficPolicy().GetLoadBalancer().GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH
	if passthroughSubset {
		typ = clusterv3.Cluster_ORIGINAL_DST
	}
	w := &wrapper{c: &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		CommonLbConfig:       &clusterv3.Cluster_CommonLbConfig{},
	}}
	switch typ {
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		la := endpoint.Assignment(b.sc, name, svc, port, subset)
		if !hasEndpoints(la) {
			return nil // Istio emits no DNS cluster without endpoints
		}
		w.c.LoadAssignment = la
		b.setDNS(w.c)
	}
	b.setUpstreamProtocol(w, port)
	md := istioMetadata(w.c)
	md.Fields["services"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{serviceMetadata(svc)}})
	md.Fields["default_original_port"] = structpb.NewNumberValue(float64(port.Number))

	policy := model.MergeTrafficPolicy(dr.spec, subset, port.Number)
	// Auto mTLS looks at the rule's own policy for the cluster: the
	// subset's for subset clusters, the destination-level one otherwise.
	own := dr.spec.GetTrafficPolicy()
	if ss != nil {
		own = ss.GetTrafficPolicy()
	}
	b.applyTrafficPolicy(w, target{
		svc:            svc,
		port:           port,
		policy:         policy,
		sni:            sni(port.Number, subset, svc.Hostname),
		drHasSelector:  dr.spec.GetWorkloadSelector() != nil,
		autoMTLSPolicy: own,
	})
	if w.c.GetType() == clusterv3.Cluster_EDS {
		w.c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{
			ServiceName: name,
			EdsConfig: &core.ConfigSource{
				ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
				InitialFetchTimeout:   durationpb.New(0),
				ResourceApiVersion:    core.ApiVersion_V3,
			},
		}
	}
	if svc.MeshExternal && ss == nil {
		md.Fields["external"] = structpb.NewBoolValue(true)
	}
	if dr.cfg != nil {
		md.Fields["config"] = structpb.NewStringValue(configPath(dr.cfg))
		if ss != nil {
			md.Fields["subset"] = structpb.NewStringValue(subset)
		}
		if m := policy.GetTls().GetMode(); m == networking.ClientTLSSettings_SIMPLE || m == networking.ClientTLSSettings_MUTUAL {
			md.Fields["alpn_override"] = structpb.NewStringValue("false")
		}
	}
	return w.build()
}

func hasEndpoints(la *endpointv3.ClusterLoadAssignment) bool {
	for _, l := range la.GetEndpoints() {
		if len(l.GetLbEndpoints()) > 0 {
			return true
		}
	}
	return false
}

func discoveryType(svc *model.Service) clusterv3.Cluster_DiscoveryType {
	switch svc.Resolution {
	case model.DNSLB:
		return clusterv3.Cluster_STRICT_DNS
	case model.DNSRoundRobinLB:
		return clusterv3.Cluster_LOGICAL_DNS
	case model.Passthrough:
		return clusterv3.Cluster_ORIGINAL_DST
	}
	return clusterv3.Cluster_EDS
}

// setDNS sets the DNS resolution options of STRICT_DNS and LOGICAL_DNS
// clusters: the address family follows the proxy's own addresses (IPv4-only
// unless the proxy is IPv6-only; dual-stack proxies resolve both),
// refresh from the mesh (Istio's default 60s), honouring record TTLs.
func (b *builder) setDNS(c *clusterv3.Cluster) {
	switch {
	case b.ipv6 && !b.ipv4:
		c.DnsLookupFamily = clusterv3.Cluster_V6_ONLY
	case b.ipv6 && b.ipv4:
		c.DnsLookupFamily = clusterv3.Cluster_ALL
	default:
		c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
	}
	c.DnsRefreshRate = b.mesh.GetDnsRefreshRate()
	if c.DnsRefreshRate == nil {
		c.DnsRefreshRate = durationpb.New(60 * time.Second)
	}
	c.RespectDnsTtl = true
}

// setUpstreamProtocol: HTTP/2 for GRPC, GRPC-Web and HTTP2 ports; the
// downstream protocol for undeclared (sniffed) ports; otherwise nothing,
// which Envoy reads as HTTP/1.1 for HTTP ports.
func (b *builder) setUpstreamProtocol(w *wrapper, port model.Port) {
	switch {
	case port.Protocol.IsHTTP2():
		setH2(w)
	case port.Protocol.IsUnsupported() && b.proxy.Type == model.SidecarProxy:
		setUseDownstream(w)
	}
}

func setH2(w *wrapper) {
	o := w.options()
	if o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
		return
	}
	o.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
				Http2ProtocolOptions: &core.Http2ProtocolOptions{},
			},
		},
	}
}

func setUseDownstream(w *wrapper) {
	w.options().UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
		UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions:  &core.Http1ProtocolOptions{},
			Http2ProtocolOptions: &core.Http2ProtocolOptions{},
		},
	}
}

func isH2(w *wrapper) bool {
	return w.hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// sni is Istio's SNI for in-mesh mTLS: outbound_.<port>_.<subset>_.<host>.
func sni(port uint32, subset, host string) string {
	return model.Outbound + "_." + strconv.FormatUint(uint64(port), 10) + "_." + subset + "_." + host
}

func istioMetadata(c *clusterv3.Cluster) *structpb.Struct {
	if c.Metadata == nil {
		c.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	}
	md, ok := c.Metadata.FilterMetadata[IstioMetadataKey]
	if !ok {
		md = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		c.Metadata.FilterMetadata[IstioMetadataKey] = md
	}
	return md
}

// serviceMetadata is the {host, name, namespace} entry telemetry reads.
// Istio names ServiceEntry services by their host.
func serviceMetadata(svc *model.Service) *structpb.Value {
	name := svc.Hostname
	if svc.Source.Kind != schema.ServiceEntry && svc.Source.Name != "" {
		name = svc.Source.Name
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"host":      structpb.NewStringValue(svc.Hostname),
		"name":      structpb.NewStringValue(name),
		"namespace": structpb.NewStringValue(svc.Namespace),
	}})
}

// configPath is Istio's reference to the config that shaped a resource:
// /apis/<group>/<version>/namespaces/<ns>/<kebab-kind>/<name>.
func configPath(c *config.Config) string {
	version := c.Version
	if version == "" {
		version = "v1"
	}
	return "/apis/" + c.Kind.Group + "/" + version + "/namespaces/" + c.Namespace + "/" + kebab(c.Kind.Kind) + "/" + c.Name
}

func kebab(s string) string {
	var sb strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				sb.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func connectTimeout(mesh *meshconfig.MeshConfig) *durationpb.Duration {
	if d := mesh.GetConnectTimeout(); d != nil {
		return durationpb.New(d.AsDuration())
	}
	return durationpb.New(10 * time.Second)
}
