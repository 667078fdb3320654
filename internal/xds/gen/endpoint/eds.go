package endpoint

import (
	"net/netip"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
)

// Metadata keys and values Istio puts on endpoints.
const (
	// IstioMetadataKey holds Istio's own filter metadata ("workload").
	IstioMetadataKey = "istio"
	// TransportSocketMatchKey holds the keys cluster transport_socket_matches select on.
	TransportSocketMatchKey = "envoy.transport_socket_match"
	// TLSModeKey is the transport socket match key carrying the endpoint's TLS mode.
	TLSModeKey = "tlsMode"
	// TLSModeIstio marks endpoints whose workload runs a mesh proxy.
	TLSModeIstio = "istio"
	// TLSModeDisabled marks endpoints without a mesh proxy.
	TLSModeDisabled = "disabled"
)

// Build returns one ClusterLoadAssignment per distinct requested name,
// sorted by name. Names that do not denote a visible outbound cluster with
// endpoints discovered over EDS (unknown host, port or subset, inbound or
// fixed clusters, DNS or passthrough services) get an empty assignment for
// that name rather than no answer: Envoy waits for every resource it asked
// for, and an empty assignment is the truthful answer "no endpoints".
func Build(sc *model.Scope, names []string) []*endpointv3.ClusterLoadAssignment {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	out := make([]*endpointv3.ClusterLoadAssignment, 0, len(sorted))
	for i, name := range sorted {
		if i > 0 && sorted[i-1] == name {
			continue
		}
		out = append(out, forName(sc, name))
	}
	return out
}

func forName(sc *model.Scope, name string) *endpointv3.ClusterLoadAssignment {
	key, ok := model.ParseClusterName(name)
	if !ok || key.Direction != model.Outbound {
		return empty(name)
	}
	svc, ok := sc.Service(key.Host)
	if !ok || svc.Resolution != model.ClientSideLB {
		return empty(name)
	}
	port, ok := svc.Port(key.Port)
	if !ok {
		return empty(name)
	}
	return Assignment(sc, name, svc, port, key.Subset)
}

func empty(name string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name}
}

// Assignment builds the load assignment of one outbound cluster: the
// endpoints of svc that serve port, filtered by the labels of the named
// DestinationRule subset ("" for none), grouped by locality, with Istio's
// locality load balancing applied relative to the scope's proxy when the
// traffic policy in force enables it. An unknown subset gives an assignment
// without endpoints. Services with DNS_ROUND_ROBIN resolution keep only their
// first endpoint (Envoy's LOGICAL_DNS clusters take exactly one).
func Assignment(sc *model.Scope, clusterName string, svc *model.Service, port model.Port, subset string) *endpointv3.ClusterLoadAssignment {
	var dr *networking.DestinationRule
	if c, ok := sc.DestinationRule(svc.Hostname); ok {
		dr = c.Spec.(*networking.DestinationRule)
	}
	var selector map[string]string
	if subset != "" {
		ss := findSubset(dr, subset)
		if ss == nil {
			return empty(clusterName)
		}
		selector = ss.GetLabels()
	}
	policy := model.MergeTrafficPolicy(dr, subset, port.Number)
	// An explicit non-ISTIO_MUTUAL TLS mode in the DestinationRule turns
	// off the endpoint tlsMode match, as Istio's mTLS checker does.
	drAllowsMTLS := policy.GetTls() == nil || policy.GetTls().GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL

	groups := group(sc, svc, port, selector, drAllowsMTLS)
	if svc.Resolution == model.DNSRoundRobinLB {
		groups = firstOnly(groups)
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: clusterName}
	for _, g := range groups {
		cla.Endpoints = append(cla.Endpoints, g.lle)
	}
	if setting := LocalityLBSetting(sc.Snapshot().Mesh.GetLocalityLbSetting(), policy.GetLoadBalancer().GetLocalityLbSetting()); setting != nil {
		applyLocalityLB(cla, groups, sc.Proxy(), setting, policy.GetOutlierDetection() != nil)
	}
	return cla
}

func findSubset(dr *networking.DestinationRule, name string) *networking.Subset {
	for _, ss := range dr.GetSubsets() {
		if ss.GetName() == name {
			return ss
		}
	}
	return nil
}

// localityGroup is one LocalityLbEndpoints and the model endpoints behind
// its lb_endpoints (same order), needed for failoverPriority label matches.
type localityGroup struct {
	locality  string
	lle       *endpointv3.LocalityLbEndpoints
	endpoints []*model.Endpoint
}

func group(sc *model.Scope, svc *model.Service, port model.Port, selector map[string]string, drAllowsMTLS bool) []*localityGroup {
	byLocality := map[string]*localityGroup{}
	var order []string
	for _, ep := range sc.Snapshot().Endpoints(svc.Key()) {
		if !model.LabelsMatch(selector, ep.Labels) {
			continue
		}
		target := ep.PortFor(port)
		mtls := drAllowsMTLS && ep.TLSMode != "" && ep.TLSMode != TLSModeDisabled &&
			!workloadMTLSDisabled(sc.Snapshot(), ep, svc.Namespace, target)
		g, ok := byLocality[ep.Locality]
		if !ok {
			region, zone, subzone := model.SplitLocality(ep.Locality)
			g = &localityGroup{locality: ep.Locality, lle: &endpointv3.LocalityLbEndpoints{
				Locality: &core.Locality{Region: region, Zone: zone, SubZone: subzone},
			}}
			byLocality[ep.Locality] = g
			order = append(order, ep.Locality)
		}
		g.lle.LbEndpoints = append(g.lle.LbEndpoints, lbEndpoint(ep, target, mtls))
		g.endpoints = append(g.endpoints, ep)
	}
	sort.Strings(order)
	out := make([]*localityGroup, 0, len(order))
	for _, l := range order {
		g := byLocality[l]
		var w uint32
		for _, e := range g.endpoints {
			w += e.LBWeight()
		}
		// gRPC's xDS client rejects localities without a weight.
		g.lle.LoadBalancingWeight = wrapperspb.UInt32(w)
		out = append(out, g)
	}
	return out
}

func firstOnly(groups []*localityGroup) []*localityGroup {
	if len(groups) == 0 {
		return groups
	}
	g := groups[0]
	g.lle.LbEndpoints = g.lle.LbEndpoints[:1]
	g.endpoints = g.endpoints[:1]
	g.lle.LoadBalancingWeight = wrapperspb.UInt32(g.endpoints[0].LBWeight())
	return groups[:1]
}

func lbEndpoint(ep *model.Endpoint, port uint32, mtls bool) *endpointv3.LbEndpoint {
	md := &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		IstioMetadataKey: {Fields: map[string]*structpb.Value{
			"workload": structpb.NewStringValue(workloadMetadata(ep)),
		}},
	}}
	if mtls {
		md.FilterMetadata[TransportSocketMatchKey] = &structpb.Struct{Fields: map[string]*structpb.Value{
			TLSModeKey: structpb.NewStringValue(ep.TLSMode),
		}}
	}
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: Address(ep.Address, port),
		}},
		HealthStatus:        healthStatus(ep.Health),
		LoadBalancingWeight: wrapperspb.UInt32(ep.LBWeight()),
		Metadata:            md,
	}
}

// healthStatus is the EDS health_status of an endpoint's health.
func healthStatus(h model.Health) core.HealthStatus {
	switch h {
	case model.Unhealthy:
		return core.HealthStatus_UNHEALTHY
	case model.Draining:
		return core.HealthStatus_DRAINING
	}
	return core.HealthStatus_HEALTHY
}

// Address returns an Envoy address: a socket address for IPs and host names,
// a pipe for "unix://" paths.
func Address(host string, port uint32) *core.Address {
	if path, ok := strings.CutPrefix(host, "unix://"); ok {
		return &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: path}}}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address:       host,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

// workloadMetadata is Istio's compressed telemetry label set:
// workload;namespace;canonical-service;canonical-revision;cluster.
func workloadMetadata(ep *model.Endpoint) string {
	name, rev := CanonicalService(ep.Labels, ep.WorkloadName)
	if rev == "latest" {
		rev = ""
	}
	return ep.WorkloadName + ";" + ep.Namespace + ";" + name + ";" + rev + ";"
}

// CanonicalService returns Istio's canonical service name and revision of
// a workload: the service.istio.io/canonical-* labels, else the Kubernetes
// recommended app labels, else app/version, else the workload name and
// "latest".
func CanonicalService(labels map[string]string, workloadName string) (name, revision string) {
	name = firstLabel(labels, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
	if name == "" {
		name = workloadName
	}
	revision = firstLabel(labels, "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")
	if revision == "" {
		revision = "latest"
	}
	return name, revision
}

func firstLabel(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}
