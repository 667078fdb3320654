package manager

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

var errClosed = errors.New("cluster manager closed")

// ApplyClusters applies res as ApplyClusterSet does, for callers that
// hold messages (tests, configuration built in process): versions are
// hashes of the clusters' content (xdsset.Of). The manager does not keep
// the messages.
func (m *Manager) ApplyClusters(res map[string]*clusterv3.Cluster) map[string]error {
	return m.ApplyClusterSet(xdsset.Of(res))
}

// ApplyClusterSet makes res (the complete CDS set, as the xDS client
// delivers it) the clusters in force and returns the errors of the
// rejected ones, for the NACK (nil when all were accepted):
//
//   - a cluster with the version it was compiled from is kept as it is,
//     without being decoded; so is one whose new version has the same
//     content (the same deterministic serialization);
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
// The manager keeps what it compiled and fingerprints of the content, not
// the messages.
func (m *Manager) ApplyClusterSet(res xdsset.Set) map[string]error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := map[string]error{}
	names := res.Names()
	if m.closed {
		for _, name := range names {
			errs[name] = errClosed
		}
		return errs
	}
	old := *m.clusters.Load()
	next := make(map[string]*entry, len(names))
	for _, name := range names {
		prev := old[name]
		e, err := m.cluster(name, res, prev)
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

// cluster returns the entry of cluster name in res: prev if unchanged,
// else a new one. Called with mu held.
func (m *Manager) cluster(name string, res xdsset.Set, prev *entry) (*entry, error) {
	version := res.Version(name)
	if prev != nil && xdsset.Unchanged(prev.src.version, version) {
		return prev, nil
	}
	msg, err := res.Msg(name)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	pc, ok := msg.(*clusterv3.Cluster)
	if msg != nil && !ok {
		return nil, fmt.Errorf("cluster %q: resource is a %T, not a Cluster", name, msg)
	}
	if pc == nil {
		return nil, fmt.Errorf("cluster %q: nil resource", name)
	}
	src := newSource(version, pc)
	if prev != nil && src.sameContent(prev.src) {
		prev.src.version = version
		return prev, nil
	}
	return m.build(name, pc, src, prev)
}

// build compiles one cluster.
func (m *Manager) build(name string, pc *clusterv3.Cluster, src source, prev *entry) (*entry, error) {
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
	d := dialer{bind: bind, keepalive: keepaliveConfig(c.ConnectionOptions), sockets: socks, httpALPN: alpnOverride(pc)}
	// The dialer is built: keep nothing of the decoded Cluster.
	c = c.Retained()
	e := newEntry(name, src, c, d, m.log)
	if prev != nil && src.sameInstance(prev.src) {
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

// source identifies what an entry was compiled from: the resource's
// version and fingerprints of its deterministic serialization, whole and
// without settingsFields. Guarded by Manager.mu (version is updated when
// a new version has the same content).
type source struct {
	version string
	// content and instance are SHA-256 sums; ok is false if the cluster
	// could not be serialized, and the sums then match nothing.
	content, instance [sha256.Size]byte
	ok                bool
}

func newSource(version string, pc *clusterv3.Cluster) source {
	src := source{version: version}
	whole, err := proto.MarshalOptions{Deterministic: true}.Marshal(pc)
	if err != nil {
		return src
	}
	x := proto.Clone(pc)
	r := x.ProtoReflect()
	fields := r.Descriptor().Fields()
	for _, n := range settingsFields {
		if fd := fields.ByName(n); fd != nil {
			r.Clear(fd)
		}
	}
	inst, err := proto.MarshalOptions{Deterministic: true}.Marshal(x)
	if err != nil {
		return src
	}
	src.content, src.instance, src.ok = sha256.Sum256(whole), sha256.Sum256(inst), true
	return src
}

// sameContent reports whether a and b were compiled from the same cluster.
func (a source) sameContent(b source) bool { return a.ok && b.ok && a.content == b.content }

// sameInstance reports whether a and b differ only in settingsFields.
func (a source) sameInstance(b source) bool { return a.ok && b.ok && a.instance == b.instance }

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

// ApplyEndpoints applies res as ApplyEndpointSet does, for callers that
// hold messages (tests, configuration built in process): versions are
// hashes of the assignments' content (xdsset.Of); a nil assignment removes
// the service's endpoints.
func (m *Manager) ApplyEndpoints(res map[string]*endpointv3.ClusterLoadAssignment) map[string]error {
	return m.ApplyEndpointSet(xdsset.Of(res))
}

// ApplyEndpointSet applies EDS resources (ClusterLoadAssignments by
// service name) to the clusters that use them and returns the errors of
// the rejected ones (nil when all were accepted); a rejected assignment
// leaves its clusters' hosts as they were. An assignment with the version
// last applied is skipped without being decoded, so the xDS client may
// pass its complete set every time; names absent from res keep their
// endpoints (a name goes away with its last cluster). Names no cluster
// uses (yet) are kept until the next ApplyClusterSet. Hosts that stay keep
// their counters, outlier state and connections; hosts that leave drain
// their pools. The manager keeps the compiled endpoints and the version,
// not the messages.
func (m *Manager) ApplyEndpointSet(res xdsset.Set) map[string]error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := map[string]error{}
	for _, name := range res.Names() {
		version := res.Version(name)
		if prev, ok := m.applied[name]; ok && xdsset.Unchanged(prev, version) {
			continue
		}
		eps, err := endpoints(name, res, m.intern)
		if err != nil {
			errs[name] = err
			m.log.Warn("cluster load assignment rejected", "service", name, "error", err)
			continue
		}
		m.endpoints[name], m.applied[name] = eps, version
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

// endpoints decodes and compiles the assignment name of res, sharing
// repeated values through in.
func endpoints(name string, res xdsset.Set, in *upstream.Interner) (*upstream.EndpointSet, error) {
	msg, err := res.Msg(name)
	if err != nil {
		return nil, fmt.Errorf("cluster load assignment %q: %w", name, err)
	}
	cla, ok := msg.(*endpointv3.ClusterLoadAssignment)
	if msg != nil && !ok {
		return nil, fmt.Errorf("cluster load assignment %q: resource is a %T, not a ClusterLoadAssignment", name, msg)
	}
	return endpointSet(name, cla, in)
}

func endpointSet(name string, cla *endpointv3.ClusterLoadAssignment, in *upstream.Interner) (*upstream.EndpointSet, error) {
	if cla == nil {
		return &upstream.EndpointSet{ClusterName: name, OverprovisioningFactor: host.DefaultOverprovisioningFactor}, nil
	}
	if cla.GetClusterName() != name {
		return nil, fmt.Errorf("cluster load assignment %q: resource name differs from cluster_name %q", name, cla.GetClusterName())
	}
	return in.Endpoints(cla)
}
