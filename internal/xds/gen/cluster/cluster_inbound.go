package cluster

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
)

// inboundTarget is one service port the proxy serves, reached on target.
type inboundTarget struct {
	svc    *model.Service
	port   model.Port
	target uint32
}

// inbound builds the inbound|<port>|| clusters. Without Sidecar ingress
// listeners there is one per endpoint port of the proxy's service
// instances (the first instance on a port is primary, the others only add
// telemetry metadata); with them, one per ingress listener; with
// interception mode NONE and no ingress listeners, none.
//
// Where the cluster sends traffic follows mesh inboundTrafficPolicy, as in
// Istio 1.10 and later: the default PASSTHROUGH gives an ORIGINAL_DST
// cluster bound to 127.0.0.6 (traffic goes to the pod IP the client
// dialled), LOCALHOST a STATIC cluster to 127.0.0.1:<targetPort>.
func (b *builder) inbound() []*clusterv3.Cluster {
	if sidecar := b.sidecar(); len(sidecar.GetIngress()) > 0 {
		return b.inboundFromSidecar(sidecar)
	}
	if b.proxy.Metadata[model.MetaInterception] == "NONE" {
		return nil
	}
	byPort := map[uint32][]inboundTarget{}
	seen := map[string]bool{}
	for _, si := range b.sc.Snapshot().ProxyInstances(b.proxy) {
		for _, p := range si.Service.Ports {
			t := si.Endpoint.PortFor(p)
			key := si.Service.Hostname + "/" + si.Service.Namespace + "/" + strconv.FormatUint(uint64(p.Number), 10) + "/" + strconv.FormatUint(uint64(t), 10)
			if seen[key] {
				continue
			}
			seen[key] = true
			byPort[t] = append(byPort[t], inboundTarget{svc: si.Service, port: p, target: t})
		}
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	bind := ""
	if b.mesh.GetInboundTrafficPolicy().GetMode() == meshconfig.MeshConfig_InboundTrafficPolicy_LOCALHOST {
		bind = b.localhost()
	}
	out := make([]*clusterv3.Cluster, 0, len(ports))
	for _, p := range ports {
		out = append(out, b.inboundCluster(p, bind, byPort[p]))
	}
	return out
}

func (b *builder) sidecar() *networking.Sidecar {
	if b.sc.Sidecar == nil {
		return nil
	}
	return b.sc.Sidecar.Spec.(*networking.Sidecar)
}

func (b *builder) inboundFromSidecar(sidecar *networking.Sidecar) []*clusterv3.Cluster {
	instances := b.sc.Snapshot().ProxyInstances(b.proxy)
	var out []*clusterv3.Cluster
	for _, ing := range sidecar.GetIngress() {
		listen := model.Port{
			Name:     ing.GetPort().GetName(),
			Number:   ing.GetPort().GetNumber(),
			Protocol: model.ParseProtocol(ing.GetPort().GetProtocol()),
		}
		bind, target, ok := b.parseDefaultEndpoint(ing.GetDefaultEndpoint())
		if !ok {
			continue
		}
		svc := &model.Service{ // Istio's stand-in when no instance matches
			Hostname:     b.sc.Sidecar.Name + "." + b.sc.Sidecar.Namespace,
			Namespace:    b.sc.Sidecar.Namespace,
			MeshExternal: true,
		}
		for _, si := range instances {
			if matched := func() bool {
				for _, p := range si.Service.Ports {
					if si.Endpoint.PortFor(p) == listen.Number {
						return true
					}
				}
				return false
			}(); matched {
				svc = si.Service
				break
			}
		}
		out = append(out, b.inboundCluster(listen.Number, bind, []inboundTarget{{svc: svc, port: listen, target: target}}))
	}
	return out
}

// parseDefaultEndpoint reads a Sidecar ingress defaultEndpoint: "" (original
// destination), unix:///path, 127.0.0.1:<port> / [::1]:<port> (localhost),
// 0.0.0.0:<port> / [::]:<port> (the proxy's own IP).
func (b *builder) parseDefaultEndpoint(s string) (bind string, port uint32, ok bool) {
	if s == "" || strings.HasPrefix(s, "unix://") {
		return s, 0, true
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return "", 0, false
	}
	switch host {
	case "127.0.0.1":
		bind = "127.0.0.1"
		if b.ipv6 && !b.ipv4 {
			bind = "::1"
		}
	case "::1":
		bind = "::1"
		if b.ipv4 && !b.ipv6 {
			bind = "127.0.0.1"
		}
	case "0.0.0.0", "::":
		want4 := host == "0.0.0.0"
		for _, ip := range b.proxy.IPAddresses {
			if a, err := netip.ParseAddr(ip); err == nil && a.Is4() == want4 {
				bind = ip
				break
			}
		}
		if bind == "" {
			bind = map[bool]string{true: "127.0.0.1", false: "::1"}[want4]
		}
	default:
		bind = host
	}
	return bind, uint32(n), true
}

func (b *builder) localhost() string {
	if b.ipv6 && !b.ipv4 {
		return "::1"
	}
	return "127.0.0.1"
}

func (b *builder) passthroughBind() string {
	if b.ipv6 && !b.ipv4 {
		return InboundPassthroughBindIPv6
	}
	return InboundPassthroughBindIPv4
}

func (b *builder) inboundCluster(clusterPort uint32, bind string, targets []inboundTarget) *clusterv3.Cluster {
	primary := targets[0]
	name := model.ClusterName(model.Inbound, clusterPort, "", "")
	w := &wrapper{c: &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		CommonLbConfig:       &clusterv3.Cluster_CommonLbConfig{},
	}}
	if bind != "" {
		w.c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		w.c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: endpoint.Address(bind, primary.target),
				}},
			}}}},
		}
	} else {
		// Original-destination hosts of inbound clusters are never cleaned up.
		w.c.CleanupInterval = &durationpb.Duration{Seconds: maxCleanupInterval}
	}
	b.setUpstreamProtocol(w, primary.port)
	if !primary.svc.MeshExternal {
		var svcs []*structpb.Value
		have := map[string]bool{}
		for _, t := range targets {
			if t.port.Number != primary.port.Number || have[t.svc.Hostname] {
				continue
			}
			have[t.svc.Hostname] = true
			svcs = append(svcs, serviceMetadata(t.svc))
		}
		istioMetadata(w.c).Fields["services"] = structpb.NewListValue(&structpb.ListValue{Values: svcs})
	}

	// Circuit breakers set by users must hold on the server side as well,
	// so the DestinationRule's connection pool applies inbound too.
	var policy *networking.TrafficPolicy
	if c, ok := b.sc.DestinationRule(primary.svc.Hostname); ok && !primary.svc.MeshExternal {
		if tp := c.Spec.(*networking.DestinationRule).GetTrafficPolicy(); tp != nil {
			policy, _ = model.PortTrafficPolicy(tp, primary.port.Number)
			istioMetadata(w.c).Fields["config"] = structpb.NewStringValue(configPath(&c))
		}
	}
	// A Sidecar's inbound connection pool overrides the DestinationRule's.
	if pool := b.inboundConnectionPool(clusterPort); pool != nil {
		p := &networking.TrafficPolicy{}
		if policy != nil {
			p.LoadBalancer, p.OutlierDetection, p.Tls = policy.LoadBalancer, policy.OutlierDetection, policy.Tls
		}
		p.ConnectionPool = pool
		policy = p
	}
	b.applyConnectionPool(w, policy.GetConnectionPool(), nil)
	if w.c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		w.c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	}
	if bind != "127.0.0.1" && bind != "::1" && !strings.HasPrefix(bind, "unix://") {
		// Leave from 127.0.0.6 so the capture rules do not loop our own
		// traffic to the workload back into the proxy.
		w.c.UpstreamBindConfig = &core.BindConfig{SourceAddress: socketAddress(b.passthroughBind(), 0)}
	}
	return w.build()
}

func (b *builder) inboundConnectionPool(port uint32) *networking.ConnectionPoolSettings {
	sidecar := b.sidecar()
	for _, ing := range sidecar.GetIngress() {
		if ing.GetPort().GetNumber() == port && ing.GetConnectionPool() != nil {
			return ing.GetConnectionPool()
		}
	}
	return sidecar.GetInboundConnectionPool()
}

func socketAddress(ip string, port uint32) *core.SocketAddress {
	return &core.SocketAddress{Address: ip, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}
}

// passthroughOptions are the HTTP options of the passthrough clusters:
// whatever protocol the client spoke, idle connections closed after 5m.
func passthroughOptions() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &core.HttpProtocolOptions{IdleTimeout: durationpb.New(5 * time.Minute)},
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &core.Http1ProtocolOptions{},
				Http2ProtocolOptions: &core.Http2ProtocolOptions{},
			},
		},
	}
}

func (b *builder) blackHole() *clusterv3.Cluster { return BlackHole(b.mesh) }

// passthrough is the ORIGINAL_DST cluster for traffic to unknown
// destinations (ALLOW_ANY), with default circuit breakers.
func (b *builder) passthrough() *clusterv3.Cluster {
	w := &wrapper{
		c: &clusterv3.Cluster{
			Name:                 PassthroughCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		},
		hpo: passthroughOptions(),
	}
	b.applyConnectionPool(w, nil, nil)
	return w.build()
}

// inboundPassthrough forwards inbound traffic to ports no service declares,
// from 127.0.0.6 (and ::6 for dual-stack proxies).
func (b *builder) inboundPassthrough() *clusterv3.Cluster {
	c := b.passthrough()
	c.Name = InboundPassthroughCluster
	bind := &core.BindConfig{SourceAddress: socketAddress(b.passthroughBind(), 0)}
	if b.ipv4 && b.ipv6 {
		bind.ExtraSourceAddresses = []*core.ExtraSourceAddress{{Address: socketAddress(InboundPassthroughBindIPv6, 0)}}
	}
	c.UpstreamBindConfig = bind
	return c
}
