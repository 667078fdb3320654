package filter

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// Record is what one request leaves for telemetry (Istio's metrics and
// access log fields). The connection manager fills it as the request
// goes and hands it to its observer once the request ends. Filters set
// Flags and Details; the router sets the upstream fields.
type Record struct {
	Start    time.Time
	Duration time.Duration
	// UpstreamServiceTime is from sending the first attempt to receiving
	// the final attempt's response headers (x-envoy-upstream-service-time).
	UpstreamServiceTime time.Duration

	Protocol  string // "HTTP/1.1", "HTTP/2.0"
	Method    string
	Authority string // normalised
	Path      string // normalised, with query
	RequestID string
	// Header is the downstream request's headers once sanitised and given
	// the proxy headers (before route header mutations); read it only
	// during Observe.
	Header http.Header

	Listener   string
	StatPrefix string
	RouteName  string
	// Route is the matched route, nil when none (its metadata carries
	// Istio's config path).
	Route *route.Route
	// Cluster is the upstream cluster chosen; UpstreamHost the address of
	// the host that served the final attempt, UpstreamPeerIdentity that
	// host's SPIFFE ID as the upstream TLS handshake verified it ("" for
	// plaintext or unverified TLS).
	Cluster              string
	UpstreamHost         string
	UpstreamPeerIdentity string
	Attempts             uint32

	// ResponseCode is the status sent downstream; 0 when none was (the
	// client went away first).
	ResponseCode int
	Flags        Flags
	// Details is Envoy's %RESPONSE_CODE_DETAILS% ("via_upstream",
	// "route_not_found", "fault_filter_abort", ...).
	Details string

	BytesReceived int64 // request body bytes read from downstream
	BytesSent     int64 // response body bytes written downstream

	Source      netip.AddrPort // downstream remote address
	Destination netip.AddrPort // downstream local (or original) address
	// Client is the trusted client address derived from the remote
	// address and x-forwarded-for (use_remote_address, xff_num_trusted_hops).
	Client string
	// ServerName is the downstream TLS server name (SNI), "" for none.
	ServerName string
	// MutualTLS reports a downstream client certificate verified by the
	// filter chain, PeerIdentity its identity (listener.Conn's fields).
	MutualTLS    bool
	PeerIdentity string

	// ResponseHeader is the response's header map as sent downstream,
	// trailers included under http.TrailerPrefix; nil when the request
	// was answered before the filter chain (refused by the connection
	// manager's checks). Read it only during Observe.
	ResponseHeader http.Header
	// GRPCStatus is the grpc-status of a gRPC response, from its
	// trailers or from the headers of a trailers-only response (local
	// replies included); GRPCStatusSet says one was seen.
	GRPCStatus    int
	GRPCStatusSet bool

	// TraceID, SpanID and ParentSpanID are the request's span when a
	// tracer is configured (ParentSpanID zero for a root span);
	// TraceSampled is its sampling decision. All zero without a tracer.
	TraceID      [16]byte
	SpanID       [8]byte
	ParentSpanID [8]byte
	TraceSampled bool
}
