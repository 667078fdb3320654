package host

import (
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// Endpoint describes a host as its cluster's load assignment does. It is a
// value: a Host's Endpoint is replaced, never modified.
type Endpoint struct {
	Address Address
	// Hostname is the endpoint's hostname (for DNS clusters, the name it
	// was resolved from); use_hostname_for_hashing hashes it.
	Hostname string
	// Weight is the load-balancing weight, at least 1.
	Weight   uint32
	Locality Locality
	Priority uint32
	// Health is the health status EDS reported.
	Health corev3.HealthStatus
	// Metadata is the endpoint's transport socket match metadata (the
	// only namespace matched after compilation). Endpoints with equal
	// metadata share one value (upstream.Interner): never modify it.
	Metadata *corev3.Metadata
	// TLSMode is Istio's filter_metadata["envoy.transport_socket_match"]
	// ["tlsMode"] ("istio" when the workload has a mesh proxy).
	TLSMode string
	// HashKey is filter_metadata["envoy.lb"]["hash_key"], which replaces
	// the address on hash rings when set.
	HashKey string
}

// Health is a host's coarse health, as load balancing sees it.
type Health uint8

const (
	Healthy Health = iota
	Degraded
	Unhealthy
)

func (h Health) String() string {
	switch h {
	case Degraded:
		return "degraded"
	case Unhealthy:
		return "unhealthy"
	}
	return "healthy"
}

// Host is one upstream host of a cluster.
type Host struct {
	key      string
	addr     Address
	endpoint atomic.Pointer[Endpoint]
	monitor  *outlier.Monitor
	hcFailed atomic.Bool
	removed  atomic.Bool

	// Stats are the host's counters. Connection pools and the router keep
	// them; least-request balancing reads RqActive.
	Stats Stats
}

// Stats are a host's live counters (Envoy's per-host stats).
type Stats struct {
	// RqActive: requests in flight.
	RqActive atomic.Int64
	// RqPending: requests waiting for a connection of this host.
	RqPending atomic.Int64
	// RqTotal: requests sent.
	RqTotal atomic.Uint64
	// CxActive: open connections.
	CxActive atomic.Int64
	// CxTotal: connections opened.
	CxTotal atomic.Uint64
	// CxConnectFail: failed connection attempts.
	CxConnectFail atomic.Uint64
}

// New returns a host for ep, watched by monitor (nil when the cluster has
// no outlier detection).
func New(ep Endpoint, monitor *outlier.Monitor) *Host {
	h := &Host{key: ep.Address.String(), addr: ep.Address, monitor: monitor}
	if ep.Weight == 0 {
		ep.Weight = 1
	}
	h.endpoint.Store(&ep)
	return h
}

// NewShared is New for an endpoint of an immutable EndpointSet: the host
// keeps ep itself instead of a copy (one Endpoint per host, not two, with
// thousands of hosts), unless ep needs New's defaults. ep must never be
// modified.
func NewShared(ep *Endpoint, monitor *outlier.Monitor) *Host {
	if ep.Weight == 0 {
		return New(*ep, monitor)
	}
	h := &Host{key: ep.Address.String(), addr: ep.Address, monitor: monitor}
	h.endpoint.Store(ep)
	return h
}

// Key is the host's identity in its cluster: its address as a string.
func (h *Host) Key() string { return h.key }

// Address returns the host's address.
func (h *Host) Address() Address { return h.addr }

// Endpoint returns the host's current description.
func (h *Host) Endpoint() *Endpoint { return h.endpoint.Load() }

// SetEndpoint replaces the host's description after an update of the load
// assignment (weight, locality, priority, health, metadata). The address
// must stay the host's own.
func (h *Host) SetEndpoint(ep Endpoint) {
	ep.Address = h.addr
	if ep.Weight == 0 {
		ep.Weight = 1
	}
	h.endpoint.Store(&ep)
}

// ShareEndpoint is SetEndpoint for an endpoint of an immutable
// EndpointSet: the host keeps ep itself when it is already in the form
// SetEndpoint would store. ep must never be modified.
func (h *Host) ShareEndpoint(ep *Endpoint) {
	if ep.Weight == 0 || ep.Address != h.addr {
		h.SetEndpoint(*ep)
		return
	}
	h.endpoint.Store(ep)
}

// Weight returns the load-balancing weight.
func (h *Host) Weight() uint32 { return h.endpoint.Load().Weight }

// Outlier returns the host's outlier monitor, nil without detection.
func (h *Host) Outlier() *outlier.Monitor { return h.monitor }

// Ejected reports whether outlier detection ejected the host.
func (h *Host) Ejected() bool { return h.monitor != nil && h.monitor.Ejected() }

// SetActiveHealthCheckFailed records the verdict of active health checking.
func (h *Host) SetActiveHealthCheckFailed(failed bool) { h.hcFailed.Store(failed) }

// Health is Envoy's coarseHealth: unhealthy when ejected, failing active
// health checks, or reported UNHEALTHY, DRAINING or TIMEOUT by EDS;
// degraded when reported DEGRADED; healthy otherwise (HEALTHY, UNKNOWN).
func (h *Host) Health() Health {
	if h.Ejected() || h.hcFailed.Load() {
		return Unhealthy
	}
	switch h.endpoint.Load().Health {
	case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_DRAINING, corev3.HealthStatus_TIMEOUT:
		return Unhealthy
	case corev3.HealthStatus_DEGRADED:
		return Degraded
	}
	return Healthy
}

// MarkRemoved records that the host left its cluster's load assignment;
// its owner drains the host's connections.
func (h *Host) MarkRemoved() { h.removed.Store(true) }

// Removed reports whether the host left its cluster's load assignment.
func (h *Host) Removed() bool { return h.removed.Load() }

// HashKey is the host's key on hash rings (Envoy's hashKey): the envoy.lb
// hash_key metadata, else the hostname when useHostname is set, else the
// address.
func (h *Host) HashKey(useHostname bool) string {
	ep := h.endpoint.Load()
	switch {
	case ep.HashKey != "":
		return ep.HashKey
	case useHostname:
		return ep.Hostname
	}
	return h.key
}

// AcquireConnection counts a new connection if fewer than limit are open
// (per-host max_connections), and reports whether it did. Pair it with
// ReleaseConnection.
func (h *Host) AcquireConnection(limit uint64) bool {
	for {
		cur := h.Stats.CxActive.Load()
		if cur >= 0 && uint64(cur) >= limit {
			return false
		}
		if h.Stats.CxActive.CompareAndSwap(cur, cur+1) {
			h.Stats.CxTotal.Add(1)
			return true
		}
	}
}

// ReleaseConnection counts a closed connection.
func (h *Host) ReleaseConnection() { h.Stats.CxActive.Add(-1) }
