package upstream

import (
	"net/netip"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// ResolvedEndpoints returns the cluster's inline endpoints with DNS names
// replaced by addresses, for Instance.Update, as Envoy's DNS clusters do:
// STRICT_DNS makes a host of every address of every name, LOGICAL_DNS of
// the first address of its single name. Each host keeps its endpoint's
// locality, priority, weight, health and metadata, and the name as its
// hostname; names without addresses drop out. lookup is the DNS owner's
// latest answer for a name. Other cluster types return their inline
// endpoints unchanged (nil for EDS and ORIGINAL_DST).
func (c *Cluster) ResolvedEndpoints(lookup func(name string) []netip.Addr) *EndpointSet {
	src := c.LoadAssignment
	if src == nil || (c.Type != StrictDNS && c.Type != LogicalDNS) {
		return src
	}
	out := &EndpointSet{
		ClusterName:            src.ClusterName,
		OverprovisioningFactor: src.OverprovisioningFactor,
		WeightedPriorityHealth: src.WeightedPriorityHealth,
		DropOverloads:          src.DropOverloads,
	}
	for _, l := range src.Localities {
		rl := l
		rl.Endpoints = nil
		for _, ep := range l.Endpoints {
			if ep.Address.Kind != host.Socket || ep.Address.IP.IsValid() {
				rl.Endpoints = append(rl.Endpoints, ep) // nothing to resolve
				continue
			}
			addrs := lookup(ep.Address.Host)
			if c.Type == LogicalDNS && len(addrs) > 1 {
				addrs = addrs[:1]
			}
			for _, a := range addrs {
				e := ep
				e.Address = host.Address{Kind: host.Socket, Host: a.String(), IP: a, Port: ep.Address.Port}
				rl.Endpoints = append(rl.Endpoints, e)
			}
		}
		out.Localities = append(out.Localities, rl)
	}
	return out
}
