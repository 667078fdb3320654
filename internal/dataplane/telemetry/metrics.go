package telemetry

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// Buckets are Envoy's default histogram buckets, which Istio's proxy uses
// for its duration (milliseconds) and size (bytes) histograms.
var Buckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Label names, in Istio's order.
var (
	commonLabels = []string{
		"reporter",
		"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
		"source_canonical_service", "source_canonical_revision", "source_cluster",
		"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
		"destination_service", "destination_service_name", "destination_service_namespace",
		"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
		"request_protocol", "response_flags", "connection_security_policy",
	}
	httpLabels = append(append([]string(nil), commonLabels...), "response_code", "grpc_response_status")
	tcpLabels  = commonLabels
)

// maxCached bounds the label sets cached per metadata generation; beyond
// it, label sets are still counted, only resolved every time.
const maxCached = 4096

// Names of Istio's pass-through clusters and listener.
const (
	virtualInbound = "virtualInbound"
)

// Config configures Metrics.
type Config struct {
	// Local is the workload the proxy serves: the source of outbound
	// traffic and the destination of inbound traffic. Its Principal (the
	// workload's SPIFFE ID, when it has one) is destination_principal of
	// inbound mutual TLS traffic.
	Local Workload
}

// Metrics records Istio's standard metrics. Its HTTP and TCP methods are
// safe for concurrent use.
type Metrics struct {
	local    Workload
	registry *prometheus.Registry

	requests                   *prometheus.CounterVec
	duration, reqSize, rspSize *prometheus.HistogramVec
	tcpSent, tcpReceived       *prometheus.CounterVec
	tcpOpened, tcpClosed       *prometheus.CounterVec

	mu   sync.Mutex // serialises SetClusters/SetEndpoints
	meta atomic.Pointer[metadata]
	// clusters and endpoints are what the last sets gave, by resource
	// name, to rebuild meta; guarded by mu.
	clusters  map[string]clusterMeta
	endpoints map[string]endpointMeta

	cache    atomic.Pointer[seriesCache]
	sessions sync.Map // *tcp.Session → *tcpSeries

	// workloadMaps counts the clusters' workload maps built
	// (clusterWorkloads.lookup): one per cluster that traffic needed the
	// destination workload of, per change of its endpoints.
	workloadMaps atomic.Int64
}

type httpKey struct {
	inbound   bool
	mtls      bool   // inbound: the downstream presented a verified client certificate
	peer      string // inbound: that certificate's identity (source_principal); outbound: the upstream's verified identity (destination_principal)
	grpc      bool
	grpcCode  int32 // the response's grpc-status; -1 when none was seen
	code      int32
	flags     filter.Flags
	cluster   string
	host      string // upstream host, for its workload (outbound)
	authority string // only when the service falls back to it
}

type tcpKey struct {
	inbound bool
	mtls    bool
	peer    string
	cluster string
	host    string
	flags   string
}

type httpSeries struct {
	requests                   prometheus.Counter
	duration, reqSize, rspSize prometheus.Observer
}

type tcpSeries struct {
	sent, received, opened, closed prometheus.Counter
}

type seriesCache struct {
	mu   sync.RWMutex
	http map[httpKey]*httpSeries
	tcp  map[tcpKey]*tcpSeries
}

func newCache() *seriesCache {
	return &seriesCache{http: map[httpKey]*httpSeries{}, tcp: map[tcpKey]*tcpSeries{}}
}

// New returns Metrics with its own registry.
func New(cfg Config) *Metrics {
	m := &Metrics{local: cfg.Local, registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total", Help: "Requests handled by the proxy."}, httpLabels)
	hist := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: Buckets}, httpLabels)
	}
	m.duration = hist("istio_request_duration_milliseconds", "Duration of requests in milliseconds.")
	m.reqSize = hist("istio_request_bytes", "Request body sizes in bytes.")
	m.rspSize = hist("istio_response_bytes", "Response body sizes in bytes.")
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, tcpLabels)
	}
	m.tcpSent = counter("istio_tcp_sent_bytes_total", "Bytes sent to the downstream of TCP connections.")
	m.tcpReceived = counter("istio_tcp_received_bytes_total", "Bytes received from the downstream of TCP connections.")
	m.tcpOpened = counter("istio_tcp_connections_opened_total", "TCP connections opened.")
	m.tcpClosed = counter("istio_tcp_connections_closed_total", "TCP connections closed.")
	m.registry.MustRegister(m.requests, m.duration, m.reqSize, m.rspSize, m.tcpSent, m.tcpReceived, m.tcpOpened, m.tcpClosed)
	m.meta.Store(&metadata{})
	m.cache.Store(newCache())
	return m
}

// Registry returns the private registry (to add collectors to it).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in Prometheus' formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// clusterMeta is what the metrics take from one cluster, and the version
// it was taken from.
type clusterMeta struct {
	version    string
	service    Service
	hasService bool
	edsName    string
	// hosts of its inline load_assignment that name a workload.
	hosts hosts
}

// endpointMeta is what the metrics take from one ClusterLoadAssignment:
// its hosts that name a workload, and its version.
type endpointMeta struct {
	version string
	hosts   hosts
}

// SetClusters replaces the clusters whose metadata names destination
// services (the complete set CDS delivered). Clusters with the version
// already seen are not decoded. A cluster that cannot be read (not a
// Cluster, or a decoding error) keeps what was taken from its previous
// version, if any, and is reported in the error.
func (m *Metrics) SetClusters(res xdsset.Set) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	next := make(map[string]clusterMeta, len(m.clusters))
	for _, name := range res.Names() {
		v := res.Version(name)
		old, had := m.clusters[name]
		if had && xdsset.Unchanged(old.version, v) {
			next[name] = old
			continue
		}
		c, err := typedMsg[*clusterv3.Cluster](res, name)
		if err != nil {
			errs = append(errs, err)
			if had {
				next[name] = old
			}
			continue
		}
		cm := clusterMeta{version: v, edsName: c.GetEdsClusterConfig().GetServiceName()}
		cm.service, cm.hasService = clusterService(c)
		cm.hosts = endpointHosts(c.GetLoadAssignment())
		next[name] = cm
	}
	m.clusters = next
	m.rebuildLocked()
	return errors.Join(errs...)
}

// SetEndpoints replaces the endpoint assignments whose metadata names
// destination workloads (the complete set EDS delivered). Assignments
// with the version already seen are not decoded; one that cannot be read
// keeps what was taken from its previous version, if any, and is reported
// in the error.
func (m *Metrics) SetEndpoints(res xdsset.Set) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	next := make(map[string]endpointMeta, len(m.endpoints))
	for _, name := range res.Names() {
		v := res.Version(name)
		old, had := m.endpoints[name]
		if had && xdsset.Unchanged(old.version, v) {
			next[name] = old
			continue
		}
		cla, err := typedMsg[*endpointv3.ClusterLoadAssignment](res, name)
		if err != nil {
			errs = append(errs, err)
			if had {
				next[name] = old
			}
			continue
		}
		next[name] = endpointMeta{version: v, hosts: endpointHosts(cla)}
	}
	m.endpoints = next
	m.rebuildLocked()
	return errors.Join(errs...)
}

// typedMsg returns resource name of res as a T (nil for a nil message).
func typedMsg[T proto.Message](res xdsset.Set, name string) (T, error) {
	var zero T
	msg, err := res.Msg(name)
	if err != nil {
		return zero, fmt.Errorf("metrics metadata of %q: %w", name, err)
	}
	if msg == nil {
		return zero, nil
	}
	t, ok := msg.(T)
	if !ok {
		return zero, fmt.Errorf("metrics metadata of %q: resource is a %T, not a %T", name, msg, zero)
	}
	return t, nil
}

// rebuildLocked derives the metadata from what was taken from each
// resource; nothing is decoded. A cluster's workloads are only its
// resources' hosts: their map is built on the first request that needs it
// (clusterWorkloads), and a cluster whose hosts did not change keeps its
// clusterWorkloads, built map included.
func (m *Metrics) rebuildLocked() {
	old := m.meta.Load()
	md := &metadata{services: map[string]Service{}, edsName: map[string]string{}, workloads: map[string]*clusterWorkloads{}}
	sources := map[string][]hosts{}
	for name, c := range m.clusters {
		if c.hasService {
			md.services[name] = c.service
		}
		if c.edsName != "" {
			md.edsName[c.edsName] = name
		}
		if c.hosts != "" {
			sources[name] = append(sources[name], c.hosts)
		}
	}
	// After the inline hosts, the assignments in name order: for an
	// address more than one lists, the same one wins every time.
	for _, name := range slices.Sorted(maps.Keys(m.endpoints)) {
		e := m.endpoints[name]
		if e.hosts == "" {
			continue
		}
		cluster := name
		if c, ok := md.edsName[name]; ok {
			cluster = c
		}
		sources[cluster] = append(sources[cluster], e.hosts)
	}
	for cluster, src := range sources {
		if cw := old.workloads[cluster]; cw != nil && slices.Equal(cw.sources, src) {
			md.workloads[cluster] = cw
			continue
		}
		md.workloads[cluster] = &clusterWorkloads{sources: src}
	}
	m.meta.Store(md)
	m.cache.Store(newCache())
}

// Observe implements the HTTP connection manager's Observer.
func (m *Metrics) Observe(r *filter.Record) {
	inbound := isInbound(r.Listener, r.Cluster)
	k := httpKey{inbound: inbound, code: int32(r.ResponseCode), flags: r.Flags, cluster: r.Cluster}
	if inbound {
		k.mtls, k.peer = r.MutualTLS, r.PeerIdentity
	} else {
		k.host, k.peer = r.UpstreamHost, r.UpstreamPeerIdentity
	}
	if ct := h1wire.Get(r.Header, "Content-Type"); strings.HasPrefix(ct, "application/grpc") {
		k.grpc, k.grpcCode = true, -1
		if r.GRPCStatusSet {
			k.grpcCode = int32(r.GRPCStatus)
		}
	}
	md := m.meta.Load()
	if _, ok := md.services[r.Cluster]; !ok {
		if _, ok := serviceFromName(r.Cluster); !ok {
			k.authority = hostOnly(r.Authority)
		}
	}
	s := m.httpSeries(md, &k)
	s.requests.Inc()
	s.duration.Observe(float64(r.Duration.Microseconds()) / 1000)
	s.reqSize.Observe(float64(r.BytesReceived))
	s.rspSize.Observe(float64(r.BytesSent))
}

func (m *Metrics) httpSeries(md *metadata, k *httpKey) *httpSeries {
	c := m.cache.Load()
	c.mu.RLock()
	s, ok := c.http[*k]
	c.mu.RUnlock()
	if ok {
		return s
	}
	lv := m.labels(md, k.inbound, k.cluster, k.host, k.authority, k.mtls, k.peer, k.flags.String(), httpLabels)
	proto := "http"
	grpcStatus := ""
	if k.grpc {
		proto = "grpc"
		switch {
		case k.grpcCode >= 0:
			// grpc-status from the trailers, or from a trailers-only
			// response (local replies included).
			grpcStatus = strconv.Itoa(int(k.grpcCode))
		case k.code != 0 && k.code != http.StatusOK:
			// No grpc-status: an HTTP error maps to one, as Envoy's
			// httpToGrpcStatus.
			grpcStatus = strconv.Itoa(filter.GRPCStatusFor(int(k.code)))
		}
	}
	lv[len(commonLabels)-3] = proto
	lv[len(commonLabels)] = strconv.Itoa(int(k.code))
	lv[len(commonLabels)+1] = grpcStatus
	s = &httpSeries{
		requests: m.requests.WithLabelValues(lv...),
		duration: m.duration.WithLabelValues(lv...),
		reqSize:  m.reqSize.WithLabelValues(lv...),
		rspSize:  m.rspSize.WithLabelValues(lv...),
	}
	c.mu.Lock()
	if len(c.http) < maxCached {
		c.http[*k] = s
	}
	c.mu.Unlock()
	return s
}

// labels builds the label values in the order of names (the common labels
// first); request_protocol is "tcp", the HTTP-only ones are left to the
// caller.
//
// Inbound, connection_security_policy is "mutual_tls" only when the
// downstream presented a client certificate the filter chain verified
// (listener.Conn.MutualTLS), "none" otherwise (plaintext, and TLS the
// proxy passes through or terminates without client authentication);
// source_principal is that certificate's identity and
// destination_principal the local workload's. Outbound, the proxy reports
// what the source knows, as Istio's source reporter does: the policy and
// source_principal stay "unknown"; destination_principal is peer, the
// upstream host's identity as the upstream TLS handshake verified it
// ("unknown" for plaintext and unverified TLS).
func (m *Metrics) labels(md *metadata, inbound bool, cluster, host, authority string, mtls bool, peer, flags string, names []string) []string {
	var src, dst Workload
	var svc Service
	reporter, policy := "source", Unknown
	if inbound {
		reporter, policy = "destination", "none"
		dst = m.local
		dst.Principal = ""
		if mtls {
			policy = "mutual_tls"
			src.Principal = peer
			dst.Principal = m.local.Principal
		}
		var ok bool
		if svc, ok = md.services[cluster]; !ok {
			svc = Service{Host: authority, Name: authority, Namespace: m.local.Namespace}
		}
	} else {
		src = m.local
		src.Principal = ""
		dst = md.workloads[cluster].lookup(host, &m.workloadMaps)
		dst.Principal = peer
		var ok bool
		if svc, ok = md.services[cluster]; !ok {
			if svc, ok = serviceFromName(cluster); !ok {
				// PassthroughCluster, BlackHoleCluster, ...: Istio names
				// the service by the cluster and the host by the authority.
				svc = Service{Host: authority, Name: cluster}
			}
		}
	}
	lv := make([]string, len(names))
	i := 0
	put := func(vs ...string) {
		for _, v := range vs {
			if v == "" {
				v = Unknown
			}
			lv[i] = v
			i++
		}
	}
	put(reporter,
		src.Name, src.Namespace, src.Principal, src.App, src.Version, src.CanonicalService, src.CanonicalRevision, src.Cluster,
		dst.Name, dst.Namespace, dst.Principal, dst.App, dst.Version,
		svc.Host, svc.Name, svc.Namespace,
		dst.CanonicalService, dst.CanonicalRevision, dst.Cluster,
		"tcp", flags, policy)
	return lv
}

// isInbound tells inbound traffic (reported by the destination) from
// outbound: Istio's inbound|port|| clusters and the virtualInbound
// listener (which also serves requests that found no cluster).
func isInbound(listenerName, cluster string) bool {
	return strings.HasPrefix(cluster, "inbound|") || strings.HasPrefix(cluster, "InboundPassthroughCluster") ||
		listenerName == virtualInbound
}

// TCP returns the observer of tcp_proxy sessions.
func (m *Metrics) TCP() tcp.Observer { return tcpObserver{m} }

type tcpObserver struct{ m *Metrics }

func (o tcpObserver) Connected(s *tcp.Session) {
	ts := o.m.tcpSeries(s, "-")
	o.m.sessions.Store(s, ts)
	ts.opened.Inc()
}

func (o tcpObserver) Transferred(s *tcp.Session, d tcp.Direction, n int) {
	v, ok := o.m.sessions.Load(s)
	if !ok {
		return
	}
	ts := v.(*tcpSeries)
	if d == tcp.ToUpstream {
		ts.received.Add(float64(n))
	} else {
		ts.sent.Add(float64(n))
	}
}

func (o tcpObserver) Closed(s *tcp.Session) {
	if _, ok := o.m.sessions.LoadAndDelete(s); !ok {
		// The upstream connection failed: the downstream one was
		// opened all the same.
		o.m.tcpSeries(s, s.ResponseFlags()).opened.Inc()
	}
	o.m.tcpSeries(s, s.ResponseFlags()).closed.Inc()
}

func (m *Metrics) tcpSeries(s *tcp.Session, flags string) *tcpSeries {
	k := tcpKey{cluster: s.Cluster, flags: flags}
	var listenerName string
	if d := s.Downstream; d != nil {
		listenerName = d.Listener
		k.mtls = d.MutualTLS
	}
	k.inbound = isInbound(listenerName, s.Cluster)
	if k.inbound && k.mtls {
		k.peer = s.Downstream.PeerIdentity
	} else {
		k.mtls = false
	}
	if !k.inbound {
		if s.Upstream != nil {
			k.host = s.Upstream.String()
		}
		k.peer = s.UpstreamPeerIdentity
	}
	c := m.cache.Load()
	c.mu.RLock()
	ts, ok := c.tcp[k]
	c.mu.RUnlock()
	if ok {
		return ts
	}
	lv := m.labels(m.meta.Load(), k.inbound, k.cluster, k.host, "", k.mtls, k.peer, flags, tcpLabels)
	ts = &tcpSeries{
		sent:     m.tcpSent.WithLabelValues(lv...),
		received: m.tcpReceived.WithLabelValues(lv...),
		opened:   m.tcpOpened.WithLabelValues(lv...),
		closed:   m.tcpClosed.WithLabelValues(lv...),
	}
	c.mu.Lock()
	if len(c.tcp) < maxCached {
		c.tcp[k] = ts
	}
	c.mu.Unlock()
	return ts
}
