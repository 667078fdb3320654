package upstream

import (
	"fmt"
	"time"
	"unique"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// DiscoveryType is how a cluster learns its hosts.
type DiscoveryType uint8

const (
	// EDS: hosts come from ClusterLoadAssignments (Endpoints, Instance.Update).
	EDS DiscoveryType = iota
	// Static: hosts are the cluster's inline load_assignment.
	Static
	// StrictDNS: every address of every name in load_assignment is a host;
	// the DNS resolver feeds Instance.Update.
	StrictDNS
	// LogicalDNS: the first address of the single name is the host.
	LogicalDNS
	// OriginalDst: the host is the downstream connection's original
	// destination; there is no balancer (see Instance.Pick).
	OriginalDst
)

func (t DiscoveryType) String() string {
	switch t {
	case EDS:
		return "EDS"
	case Static:
		return "STATIC"
	case StrictDNS:
		return "STRICT_DNS"
	case LogicalDNS:
		return "LOGICAL_DNS"
	case OriginalDst:
		return "ORIGINAL_DST"
	}
	return fmt.Sprintf("DiscoveryType(%d)", uint8(t))
}

// Envoy's cluster defaults.
const (
	DefaultConnectTimeout           = 5 * time.Second
	DefaultPerConnectionBufferLimit = 1024 * 1024
	DefaultDNSRefreshRate           = 5 * time.Second
	DefaultCleanupInterval          = 5 * time.Second
	DefaultIdleTimeout              = time.Hour
	DefaultOriginalDstHeader        = "x-envoy-original-dst-host"
)

// Cluster is a compiled envoy.config.cluster.v3.Cluster: validated,
// defaulted and immutable. Instance runs it.
type Cluster struct {
	Name        string
	AltStatName string
	Type        DiscoveryType
	// EDSServiceName is the resource name to request over EDS:
	// eds_cluster_config.service_name, or the cluster name.
	EDSServiceName string
	// LoadAssignment holds the inline endpoints of STATIC, STRICT_DNS and
	// LOGICAL_DNS clusters (DNS names unresolved); nil otherwise.
	LoadAssignment *EndpointSet
	DNS            DNS
	OriginalDst    OriginalDstOptions

	// LB configures the balancer (unused by ORIGINAL_DST clusters).
	LB lb.Config
	// SlowStart is kept from round_robin/least_request slow_start_config;
	// it is not applied yet.
	SlowStart *SlowStart

	// Breakers holds the thresholds per routing priority (Envoy's defaults
	// where the cluster sets none).
	Breakers [circuit.NumPriorities]circuit.Thresholds
	// PerHostMaxConnections per routing priority (per_host_thresholds);
	// circuit.Unlimited when unset.
	PerHostMaxConnections [circuit.NumPriorities]uint64
	// Outlier is the outlier detection; nil when the cluster has none.
	Outlier *outlier.Config

	ConnectTimeout           time.Duration
	PerConnectionBufferLimit uint32
	HTTP                     HTTPOptions
	// TransportSocket is the upstream TLS (or other transport socket)
	// configuration, kept opaque for the transport-socket owner (empty in
	// the Retained copy).
	TransportSocket TransportSocket
	// ConnectionOptions are TCP keepalive and the like (opaque; nil in
	// the Retained copy).
	ConnectionOptions *clusterv3.UpstreamConnectionOptions
	// CloseConnectionsOnHostHealthFailure and IgnoreHealthOnHostRemoval
	// are for connection pools and host removal.
	CloseConnectionsOnHostHealthFailure bool
	IgnoreHealthOnHostRemoval           bool
}

// Retained is the copy of c that its owner keeps for the cluster's
// lifetime, once it has built the dialer from TransportSocket,
// ConnectionOptions and HTTP.Upstream: those are dropped, as are
// HTTP.HTTP1 and HTTP.HTTP3 (read by no one after the build), HTTP.HTTP2
// (read by every new connection pool) is deep-copied and the names are
// copied, so that nothing of the decoded Cluster stays reachable (a
// decoded message drags its whole tree). c itself is not modified.
func (c *Cluster) Retained() *Cluster {
	out := *c
	out.Name = detachString(c.Name)
	out.AltStatName = detachString(c.AltStatName)
	out.EDSServiceName = detachString(c.EDSServiceName)
	out.OriginalDst.HTTPHeaderName = detachString(c.OriginalDst.HTTPHeaderName)
	out.TransportSocket = TransportSocket{}
	out.ConnectionOptions = nil
	out.HTTP.HTTP1, out.HTTP.HTTP3, out.HTTP.Upstream = nil, nil, nil
	if c.HTTP.HTTP2 != nil {
		out.HTTP.HTTP2 = proto.Clone(c.HTTP.HTTP2).(*corev3.Http2ProtocolOptions)
	}
	return &out
}

// detachString copies s out of the decoded message; equal names (a
// cluster's name in CDS, RDS and EDS) share one copy through unique
// while one is reachable.
func detachString(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// DNS are the resolution options of STRICT_DNS and LOGICAL_DNS clusters,
// for the DNS resolver.
type DNS struct {
	RefreshRate time.Duration
	// FailureRefreshBase and FailureRefreshMax: back-off after failures
	// (zero: use RefreshRate).
	FailureRefreshBase, FailureRefreshMax time.Duration
	RespectTTL                            bool
	LookupFamily                          clusterv3.Cluster_DnsLookupFamily
	Jitter                                time.Duration
}

// OriginalDstOptions configure ORIGINAL_DST clusters.
type OriginalDstOptions struct {
	// UseHTTPHeader takes the destination from HTTPHeaderName.
	UseHTTPHeader  bool
	HTTPHeaderName string
	// UpstreamPortOverride replaces the destination port when non-zero.
	UpstreamPortOverride uint32
	// CleanupInterval removes unused destination hosts. Envoy: 5s.
	CleanupInterval time.Duration
}

// SlowStart is a slow_start_config.
type SlowStart struct {
	Window           time.Duration
	Aggression       float64
	MinWeightPercent float64
}

// TransportSocket is a cluster's transport socket configuration as sent:
// the default socket and the metadata-matched ones (Istio's auto mTLS
// matches endpoints with tlsMode "istio").
type TransportSocket struct {
	Default *corev3.TransportSocket
	Matches []*clusterv3.Cluster_TransportSocketMatch
}

// UpstreamProtocol is the HTTP protocol spoken to hosts.
type UpstreamProtocol uint8

const (
	HTTP1 UpstreamProtocol = iota
	HTTP2
	HTTP3
	// UseDownstream: the downstream request's protocol.
	UseDownstream
	// Auto: ALPN between HTTP/1.1 and HTTP/2 (and HTTP/3 if configured).
	Auto
)

func (p UpstreamProtocol) String() string {
	switch p {
	case HTTP1:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2"
	case HTTP3:
		return "HTTP/3"
	case UseDownstream:
		return "downstream"
	case Auto:
		return "auto"
	}
	return fmt.Sprintf("UpstreamProtocol(%d)", uint8(p))
}

// HTTPOptions are the upstream HTTP options of a cluster, from
// typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.
// HttpProtocolOptions"] or the deprecated cluster fields.
type HTTPOptions struct {
	Protocol UpstreamProtocol
	// Per-protocol options as sent, for the HTTP engine; nil when absent.
	// The Retained copy keeps only HTTP2, deep-copied.
	HTTP1 *corev3.Http1ProtocolOptions
	HTTP2 *corev3.Http2ProtocolOptions
	HTTP3 *corev3.Http3ProtocolOptions
	// IdleTimeout closes idle connections (Envoy: 1h; 0: never).
	IdleTimeout time.Duration
	// MaxConnectionDuration closes connections this old (0: never).
	MaxConnectionDuration time.Duration
	// MaxRequestsPerConnection (0: unlimited).
	MaxRequestsPerConnection uint32
	// MaxStreamDuration bounds each request (0: none).
	MaxStreamDuration time.Duration
	// Upstream are auto_sni and friends, for the transport-socket owner
	// (nil in the Retained copy).
	Upstream *corev3.UpstreamHttpProtocolOptions
}
