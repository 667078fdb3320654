package upstream

import (
	"errors"
	"fmt"
	"math"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// Metadata keys read from endpoints.
const (
	// TransportSocketMatchKey holds Istio's tlsMode.
	TransportSocketMatchKey = "envoy.transport_socket_match"
	// TLSModeKey is Istio's key within it.
	TLSModeKey = "tlsMode"
	// EnvoyLBKey holds hash_key, the host's key on hash rings.
	EnvoyLBKey = "envoy.lb"
	// HashKeyKey is hash_key within envoy.lb.
	HashKeyKey = "hash_key"
)

// EndpointSet is a compiled ClusterLoadAssignment: validated, immutable.
type EndpointSet struct {
	ClusterName string
	Localities  []LocalityEndpoints
	// OverprovisioningFactor in percent. Envoy: 140.
	OverprovisioningFactor uint32
	// WeightedPriorityHealth computes priority health from weights.
	WeightedPriorityHealth bool
	// DropOverloads are kept for the router, which applies them.
	DropOverloads []DropOverload
}

// LocalityEndpoints is one LocalityLbEndpoints.
type LocalityEndpoints struct {
	Locality host.Locality
	Priority uint32
	// Weight is load_balancing_weight; 0 when unset.
	Weight    uint32
	Endpoints []host.Endpoint
}

// DropOverload drops Numerator/Denominator of requests of Category.
type DropOverload struct {
	Category    string
	Numerator   uint32
	Denominator uint32
}

// Len returns the number of endpoints.
func (s *EndpointSet) Len() int {
	n := 0
	for _, l := range s.Localities {
		n += len(l.Endpoints)
	}
	return n
}

// Endpoints validates and compiles an EDS ClusterLoadAssignment. Addresses
// must be IP addresses (or pipes, or internal listeners), as Envoy
// requires of EDS. Errors name the field and are meant for NACKs.
// Equal metadata is shared within the assignment only; a manager compiles
// through its Interner (Interner.Endpoints) to share it across clusters.
func Endpoints(cla *endpointv3.ClusterLoadAssignment) (*EndpointSet, error) {
	return NewInterner().Endpoints(cla)
}

// endpoints compiles a load assignment; dnsNames allows host names (the
// endpoints of DNS clusters). A nil assignment has no endpoints. The
// set shares repeated values through in and keeps no pointer into cla.
func endpoints(cla *endpointv3.ClusterLoadAssignment, dnsNames bool, in *Interner) (*EndpointSet, error) {
	s := &EndpointSet{ClusterName: str(cla.GetClusterName()), OverprovisioningFactor: 140}
	if cla == nil {
		return s, nil
	}
	if err := pgv.Validate(cla); err != nil {
		return nil, err
	}
	if p := cla.GetPolicy(); p != nil {
		if f := p.GetOverprovisioningFactor(); f != nil {
			s.OverprovisioningFactor = f.GetValue()
		}
		s.WeightedPriorityHealth = p.GetWeightedPriorityHealth()
		for _, d := range p.GetDropOverloads() {
			s.DropOverloads = append(s.DropOverloads, DropOverload{
				Category:    str(d.GetCategory()),
				Numerator:   d.GetDropPercentage().GetNumerator(),
				Denominator: denominator(d.GetDropPercentage().GetDenominator()),
			})
		}
	}
	if len(cla.GetNamedEndpoints()) > 0 { //nolint:staticcheck // not implemented by Envoy either
		return nil, errors.New("named_endpoints: not supported")
	}
	localityWeights := map[uint32]uint64{}
	for i, lle := range cla.GetEndpoints() {
		if lle.GetLedsClusterLocalityConfig() != nil {
			return nil, fmt.Errorf("endpoints[%d].leds_cluster_locality_config: LEDS is not supported", i)
		}
		l := LocalityEndpoints{
			Locality: host.Locality{
				Region:  str(lle.GetLocality().GetRegion()),
				Zone:    str(lle.GetLocality().GetZone()),
				SubZone: str(lle.GetLocality().GetSubZone()),
			},
			Priority: lle.GetPriority(),
			Weight:   lle.GetLoadBalancingWeight().GetValue(),
		}
		localityWeights[l.Priority] += uint64(l.Weight)
		if localityWeights[l.Priority] > math.MaxUint32 {
			return nil, fmt.Errorf("The sum of weights of all localities at the same priority exceeds %d", uint32(math.MaxUint32))
		}
		l.Endpoints = make([]host.Endpoint, 0, len(lle.GetLbEndpoints()))
		var hostWeights uint64
		for j, lbe := range lle.GetLbEndpoints() {
			ep, err := endpoint(lbe, l, dnsNames, in)
			if err != nil {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: %w", i, j, err)
			}
			hostWeights += uint64(ep.Weight)
			if hostWeights > math.MaxUint32 {
				return nil, fmt.Errorf("The sum of weights of all upstream hosts in a locality exceeds %d", uint32(math.MaxUint32))
			}
			l.Endpoints = append(l.Endpoints, ep)
		}
		s.Localities = append(s.Localities, l)
	}
	return s, nil
}

// endpoint compiles one LbEndpoint. Of its metadata the host keeps the
// transport socket match namespace (matched at connection time), shared
// through in; the rest (Istio's workload metadata and the like) is read
// here, so the decoded message does not stay alive through the host
// (5,000 endpoints' metadata maps were megabytes).
func endpoint(lbe *endpointv3.LbEndpoint, l LocalityEndpoints, dnsNames bool, in *Interner) (host.Endpoint, error) {
	if lbe.GetEndpointName() != "" {
		return host.Endpoint{}, errors.New("endpoint_name: named endpoints are not supported")
	}
	e := lbe.GetEndpoint()
	addr, err := address(e.GetAddress(), dnsNames)
	if err != nil {
		return host.Endpoint{}, fmt.Errorf("endpoint.address: %w", err)
	}
	md, err := in.socketMatch(lbe.GetMetadata().GetFilterMetadata()[TransportSocketMatchKey])
	if err != nil {
		return host.Endpoint{}, err
	}
	ep := host.Endpoint{
		Address:  addr,
		Hostname: str(e.GetHostname()),
		Weight:   1,
		Locality: l.Locality,
		Priority: l.Priority,
		Health:   lbe.GetHealthStatus(),
		Metadata: md,
		TLSMode:  metadataString(md, TransportSocketMatchKey, TLSModeKey),
		HashKey:  metadataString(lbe.GetMetadata(), EnvoyLBKey, HashKeyKey),
	}
	if w := lbe.GetLoadBalancingWeight(); w != nil {
		ep.Weight = w.GetValue()
	}
	if ep.Hostname == "" && addr.Kind == host.Socket && !addr.IP.IsValid() {
		ep.Hostname = addr.Host
	}
	return ep, nil
}

// address converts an Envoy address. Socket addresses need an IP unless
// dnsNames allows a host name; named ports and custom resolvers are not
// supported.
func address(a *corev3.Address, dnsNames bool) (host.Address, error) {
	switch {
	case a.GetPipe() != nil:
		return host.Address{Kind: host.Pipe, Path: a.GetPipe().GetPath()}, nil
	case a.GetEnvoyInternalAddress() != nil:
		ia := a.GetEnvoyInternalAddress()
		return host.Address{Kind: host.Internal, ServerListener: ia.GetServerListenerName(), EndpointID: ia.GetEndpointId()}, nil
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		if sa.GetNamedPort() != "" {
			return host.Address{}, fmt.Errorf("named_port %q: named ports are not supported", sa.GetNamedPort())
		}
		if sa.GetResolverName() != "" {
			return host.Address{}, fmt.Errorf("Unknown address resolver: %s", sa.GetResolverName())
		}
		out := host.Address{Kind: host.Socket, Host: sa.GetAddress(), Port: sa.GetPortValue()}
		ip, err := netip.ParseAddr(sa.GetAddress())
		switch {
		case err == nil:
			out.IP = ip
		case !dnsNames:
			return host.Address{}, fmt.Errorf("malformed IP address: %s", sa.GetAddress())
		}
		return out, nil
	}
	return host.Address{}, errors.New("address is empty")
}

func metadataString(md *corev3.Metadata, filter, key string) string {
	return md.GetFilterMetadata()[filter].GetFields()[key].GetStringValue()
}

func denominator(d typev3.FractionalPercent_DenominatorType) uint32 {
	switch d {
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10000
	case typev3.FractionalPercent_MILLION:
		return 1000000
	}
	return 100
}
