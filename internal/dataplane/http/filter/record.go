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
	// the host that served the final attempt.
	Cluster      string
	UpstreamHost string
	Attempts     uint32

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
}
