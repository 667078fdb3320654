package telemetry

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// hosts is what the metrics keep of a resource's endpoints: those that
// name a workload and have an IP address, in the resource's order,
// encoded in one immutable string (one allocation, no pointers for the
// garbage collector to scan, nothing shared with the decoded message).
// Each endpoint is
//
//	uvarint len, host ("ip:port")
//	uvarint ref: 0, then uvarint len, istio.workload value
//	             k > 0: the same value as the k-th distinct one before
//
// "" is a resource without such endpoints. A cluster's map of workloads
// by host is built from its resources' hosts on the first request that
// needs it (clusterWorkloads).
type hosts string

// refWindow bounds how many distinct workload values an endpoint's value
// is compared with to be written as a reference (replicas of a workload
// usually follow each other); beyond it, a value is written again.
const refWindow = 8

// endpointHosts encodes the endpoints of cla that name a workload and have
// an IP address (see hosts).
func endpointHosts(cla *endpointv3.ClusterLoadAssignment) hosts {
	var (
		b        []byte
		distinct []string // values written, substrings of cla: not kept
		key      [64]byte
	)
	for _, lle := range cla.GetEndpoints() {
		for _, lbe := range lle.GetLbEndpoints() {
			v := workloadValue(lbe.GetMetadata())
			if v == "" {
				continue
			}
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				continue
			}
			k := netip.AddrPortFrom(ip, uint16(sa.GetPortValue())).AppendTo(key[:0])
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			ref := 0
			for i := len(distinct) - 1; i >= 0 && i >= len(distinct)-refWindow; i-- {
				if distinct[i] == v {
					ref = i + 1
					break
				}
			}
			b = binary.AppendUvarint(b, uint64(ref))
			if ref == 0 {
				distinct = append(distinct, v)
				b = binary.AppendUvarint(b, uint64(len(v)))
				b = append(b, v...)
			}
		}
	}
	return hosts(b)
}

// each calls f with every endpoint of h, in order. The hosts and the
// workloads' fields are substrings of h; replicas whose value was written
// once share one *Workload. It stops at the first malformed entry, which
// endpointHosts never writes.
func (h hosts) each(f func(host string, w *Workload)) {
	s := string(h)
	var distinct []*Workload
	for len(s) > 0 {
		host, ok := cutString(&s)
		if !ok {
			return
		}
		ref, ok := cutUvarint(&s)
		if !ok {
			return
		}
		if ref == 0 {
			v, ok := cutString(&s)
			if !ok {
				return
			}
			w := parseWorkload(v)
			distinct = append(distinct, &w)
			ref = uint64(len(distinct))
		}
		if ref > uint64(len(distinct)) {
			return
		}
		f(host, distinct[ref-1])
	}
}

// cutUvarint reads a uvarint off the front of *s.
func cutUvarint(s *string) (uint64, bool) {
	var x uint64
	for i, shift := 0, uint(0); i < len(*s) && i < binary.MaxVarintLen64; i, shift = i+1, shift+7 {
		c := (*s)[i]
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			*s = (*s)[i+1:]
			return x, true
		}
	}
	return 0, false
}

// cutString reads a length-prefixed string off the front of *s.
func cutString(s *string) (string, bool) {
	n, ok := cutUvarint(s)
	if !ok || n > uint64(len(*s)) {
		return "", false
	}
	out := (*s)[:n]
	*s = (*s)[n:]
	return out, true
}

// clusterWorkloads is the destination workloads of one cluster's
// endpoints. sources are the hosts of the resources that feed the cluster
// (its inline load_assignment, then its EDS assignments by name; for an
// address in more than one, the later wins). byHost, the workloads by
// "ip:port", is built from them on the first look-up, so that a proxy
// with many clusters builds maps only for those it sends traffic to.
//
// A clusterWorkloads is shared by the metadata generations in which the
// cluster's sources stay the same, so its map outlives updates of other
// clusters. byHost is written once, under once, and only read after.
type clusterWorkloads struct {
	sources []hosts
	once    sync.Once
	byHost  map[string]*Workload
}

// lookup returns the workload of the endpoint at host ("ip:port"), the
// zero Workload (reported as "unknown") if it has none or c is nil. The
// first call builds the map and counts it in built; later calls are a
// map look-up.
func (c *clusterWorkloads) lookup(host string, built *atomic.Int64) Workload {
	if c == nil {
		return Workload{}
	}
	c.once.Do(func() {
		m := map[string]*Workload{}
		for _, h := range c.sources {
			h.each(func(host string, w *Workload) { m[host] = w })
		}
		c.byHost = m
		built.Add(1)
	})
	if w := c.byHost[host]; w != nil {
		return *w
	}
	return Workload{}
}
