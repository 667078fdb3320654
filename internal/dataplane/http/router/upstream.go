package router

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Upstream sends requests to the hosts of a cluster. The upstream/pool
// owner implements it over internal/dataplane/upstream (load balancing,
// health, circuit breakers, connection pools); tests use a fixed set of
// backends.
//
// RoundTrip picks a host of cluster with pick, sends req on a pooled
// connection and returns the response headers; the body streams from
// resp.Body, which the router always closes. req.Host is the :authority
// to send; req.URL.Host carries the same value and RoundTrip may replace
// it with the chosen host's address; nothing else of req may be changed.
// req.ProtoMajor is the downstream protocol (2 for HTTP/2 and HTTP/3
// downstreams, 1 otherwise): clusters with use_downstream_protocol speak
// HTTP/2 to their hosts when it is 2. req carries no context: the
// request's is ctx (a transport that reads it from the request needs
// req.WithContext(ctx)). The ctx of
// an attempt that reaches the route's per_try_timeout ends with a cause
// whose Timeout() reports true (a timeout, held against the host), not a
// cancellation.
// req.Body is read at most once per call and may be read after RoundTrip
// returns (a request body still streaming upstream).
//
// A request with Upgrade headers (websocket) that the host accepts gets a
// 101 response whose Body is an io.ReadWriteCloser over the raw upstream
// connection, as net/http.Transport does.
//
// Errors wrap the Err* values below (errors.Is) so the router can set
// Envoy's response flags and decide on retries; any other error is taken
// for an upstream reset. info describes the host tried (empty when none
// was picked), also on error.
type Upstream interface {
	RoundTrip(ctx context.Context, cluster string, pick PickContext, req *http.Request) (resp *http.Response, info Info, err error)
}

// PickContext is what the router knows about a request when the upstream
// picks a host (mirrors internal/dataplane/upstream/lb.PickContext, with
// hosts named by address).
type PickContext struct {
	// Hash is the route's hash-policy hash (ring hash, Maglev); HasHash
	// says it is set.
	Hash    uint64
	HasHash bool
	// Attempt is 0 for the first try, n for the n-th retry. Retries must
	// take the cluster's retry circuit breaker (max_retries) and fail with
	// ErrRetryOverflow when it is full.
	Attempt uint32
	// Previous lists the addresses (Info.Host) of hosts already tried,
	// when the route's retry policy has the previous_hosts predicate.
	Previous []string
	// SelectionRetries is host_selection_retry_max_attempts.
	SelectionRetries uint32
	// Priority is the route's routing priority (which circuit breakers).
	Priority corev3.RoutingPriority
	// MetadataMatch selects an endpoint subset (nil: any).
	MetadataMatch *corev3.Metadata
	// AutoHostRewrite asks the upstream to set req.Host to the picked
	// host's hostname (route auto_host_rewrite).
	AutoHostRewrite bool
	// Source and Destination are the downstream connection's addresses;
	// Restored says Destination is an original destination
	// (ORIGINAL_DST clusters connect to it).
	Source      netip.AddrPort
	Destination netip.AddrPort
	Restored    bool
}

// Info describes the upstream host a request went to.
type Info struct {
	// Host is the host's address ("ip:port"), "" when none was picked.
	Host string
	// PeerIdentity is the host's identity (SPIFFE ID) as the upstream
	// connection's transport socket verified it; "" for plaintext,
	// unverified TLS, or when no connection was taken.
	PeerIdentity string
}

// Errors an Upstream wraps. Each sets a response flag; the retry column
// is the retry_on condition that retries it.
//
//	error                     flag  status  retried by
//	ErrNoCluster              NC    (route) -
//	ErrNoHealthyUpstream      UH    503     -
//	ErrOverflow               UO    503     -
//	ErrConnectFailure         UF    503     connect-failure, reset
//	ErrConnectTimeout         UF    503     connect-failure, reset
//	ErrRefusedStream          UR    503     refused-stream, reset
//	ErrReset                  UR    503     reset
//	ErrConnectionTermination  UC    503     reset
//	ErrRetryOverflow          -     -       (ends retrying; the previous result stands)
var (
	ErrNoCluster             = errors.New("cluster not found")
	ErrNoHealthyUpstream     = errors.New("no healthy upstream")
	ErrOverflow              = errors.New("upstream overflow")
	ErrConnectFailure        = errors.New("upstream connect failure")
	ErrConnectTimeout        = errors.New("upstream connect timeout")
	ErrRefusedStream         = errors.New("upstream refused stream")
	ErrReset                 = errors.New("upstream reset")
	ErrConnectionTermination = errors.New("upstream connection termination")
	ErrRetryOverflow         = errors.New("upstream retry overflow")
)
