package manager

import (
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

var errClosed = errors.New("cluster manager closed")

// ApplyClusters makes res (CDS resources by name, the complete set) the
// clusters in force and returns the errors of the rejected ones, for the
// NACK (nil when all were accepted):
//
//   - unchanged clusters (proto.Equal) are kept as they are;
//   - new and changed ones are compiled; a rejected cluster keeps its
//     previous version, if any;
//   - a changed cluster whose difference lies only in connection settings
//     (connect timeout, HTTP protocol options, transport socket, bind
//     config, keepalive, metadata, DNS timing) keeps its Instance: hosts,
//     outlier state, load-balancer state and breaker counts survive; its
//     pools are replaced (the old ones drain);
//   - other changes build a new Instance. An EDS cluster gets the last
//     ClusterLoadAssignment of its service name at once; a new one warms
//     (no hosts, UH) until its assignment arrives;
//   - clusters absent from res are removed: new requests fail with NC,
//     in-flight ones finish, then their connections close.
//
// The protos must not be modified afterwards.
func (m *Manager) ApplyClusters(res map[string]*clusterv3.Cluster) map[string]error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := map[string]error{}
	if m.closed {
		for name := range res {
			errs[name] = errClosed
		}
		return errs
	}
	old := *m.clusters.Load()
	next := make(map[string]*entry, len(res))
	for name, pc := range res {
		prev := old[name]
		if prev != nil && (prev.proto == pc || proto.Equal(prev.proto, pc)) {
			next[name] = prev
			continue
		}
		e, err := m.build(name, pc, prev)
		if err != nil {
			errs[name] = err
			m.log.Warn("cluster rejected", "cluster", name, "error", err)
			if prev != nil {
				next[name] = prev
			}
			continue
		}
		next[name] = e
	}
	m.clusters.Store(&next)
	for name, e := range old {
		if next[name] != e {
			m.retireLocked(e)
		}
	}
	for name, e := range next {
		if old[name] != e {
			m.startLocked(e)
			m.log.Debug("cluster applied", "cluster", name, "type", e.c.Type)
		}
	}
	m.reindexLocked(next)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// build compiles one cluster.
func (m *Manager) build(name string, pc *clusterv3.Cluster, prev *entry) (*entry, error) {
	if pc == nil {
		return nil, fmt.Errorf("cluster %q: nil resource", name)
	}
	if pc.GetName() != name {
		return nil, fmt.Errorf("cluster %q: resource name differs from the cluster's name %q", name, pc.GetName())
	}
	c, err := upstream.Compile(pc)
	if err != nil {
		return nil, err
	}
	if c.HTTP.Protocol == upstream.HTTP3 {
		return nil, fmt.Errorf("cluster %q: HTTP/3 upstreams are not supported", name)
	}
	bind, err := newBinding(pc.GetUpstreamBindConfig())
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	socks, err := newSockets(c.TransportSocket, m.cfg.Transports)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	e := newEntry(name, pc, c, dialer{bind: bind, keepalive: keepaliveConfig(c.ConnectionOptions), sockets: socks, httpALPN: alpnOverride(pc)}, m.log)
	if prev != nil && sameInstance(prev.proto, pc) {
		e.in = prev.in
		e.adopt(prev)
		return e, nil
	}
	in, err := upstream.New(c, upstream.Options{Now: m.cfg.Now, Rand: m.cfg.Rand, Logger: m.log})
	if err != nil {
		return nil, err
	}
	e.in = in
	switch c.Type {
	case upstream.EDS:
		if eps := m.endpoints[c.EDSServiceName]; eps != nil {
			if err := e.update(eps); err != nil {
				return nil, err
			}
		} else {
			e.warming.Store(true)
		}
	case upstream.StrictDNS, upstream.LogicalDNS:
		e.seedDNS(prev)
	default:
		e.syncHosts()
	}
	return e, nil
}

// settingsFields are the Cluster fields an Instance does not read: a
// change confined to them keeps the Instance (hosts, outlier state).
var settingsFields = []protoreflect.Name{
	"alt_stat_name", "connect_timeout", "per_connection_buffer_limit_bytes",
	"transport_socket", "transport_socket_matches", "typed_extension_protocol_options",
	"upstream_connection_options", "upstream_bind_config", "metadata",
	"close_connections_on_host_health_failure", "ignore_health_on_host_removal",
	"track_timeout_budgets", "track_cluster_stats", "cleanup_interval",
	"dns_refresh_rate", "dns_failure_refresh_rate", "respect_dns_ttl", "dns_jitter",
	"http_protocol_options", "http2_protocol_options", "common_http_protocol_options",
	"upstream_http_protocol_options", "protocol_selection", "max_requests_per_connection",
}

// sameInstance reports whether a and b differ only in settingsFields.
func sameInstance(a, b *clusterv3.Cluster) bool {
	x, y := proto.Clone(a), proto.Clone(b)
	for _, msg := range []proto.Message{x, y} {
		r := msg.ProtoReflect()
		fields := r.Descriptor().Fields()
		for _, n := range settingsFields {
			if fd := fields.ByName(n); fd != nil {
				r.Clear(fd)
			}
		}
	}
	return proto.Equal(x, y)
}

// reindexLocked rebuilds the EDS index and forgets what no cluster uses
// any more: assignments of removed service names, drained retired
// clusters.
func (m *Manager) reindexLocked(cur map[string]*entry) {
	byEDS := map[string][]*entry{}
	for _, e := range cur {
		if e.c.Type == upstream.EDS {
			byEDS[e.c.EDSServiceName] = append(byEDS[e.c.EDSServiceName], e)
		}
	}
	m.byEDS = byEDS
	for name := range m.endpoints {
		if byEDS[name] == nil {
			delete(m.endpoints, name)
			delete(m.applied, name)
		}
	}
	m.retired = slices.DeleteFunc(m.retired, func(e *entry) bool { return e.empty() })
}

// ApplyEndpoints applies EDS resources (ClusterLoadAssignments by service
// name) to the clusters that use them and returns the errors of the
// rejected ones (nil when all were accepted); a rejected assignment
// leaves its clusters' hosts as they were. Assignments equal to the last
// applied one are skipped, so the xDS client may pass its complete set
// every time; names absent from res keep their endpoints (a name goes
// away with its last cluster). A nil assignment removes the service's
// endpoints. Names no cluster uses (yet) are kept until the next
// ApplyClusters. Hosts that stay keep their counters, outlier state and
// connections; hosts that leave drain their pools.
func (m *Manager) ApplyEndpoints(res map[string]*endpointv3.ClusterLoadAssignment) map[string]error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := map[string]error{}
	for name, cla := range res {
		if prev, ok := m.applied[name]; ok && (prev == cla || proto.Equal(prev, cla)) {
			continue
		}
		eps, err := endpointSet(name, cla)
		if err != nil {
			errs[name] = err
			m.log.Warn("cluster load assignment rejected", "service", name, "error", err)
			continue
		}
		m.endpoints[name], m.applied[name] = eps, cla
		for _, e := range m.byEDS[name] {
			if err := e.update(eps); err != nil {
				errs[name] = err
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func endpointSet(name string, cla *endpointv3.ClusterLoadAssignment) (*upstream.EndpointSet, error) {
	if cla == nil {
		return &upstream.EndpointSet{ClusterName: name, OverprovisioningFactor: host.DefaultOverprovisioningFactor}, nil
	}
	if cla.GetClusterName() != name {
		return nil, fmt.Errorf("cluster load assignment %q: resource name differs from cluster_name %q", name, cla.GetClusterName())
	}
	return upstream.Endpoints(cla)
}
