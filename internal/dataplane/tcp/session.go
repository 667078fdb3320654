package tcp

import (
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// Direction is the way bytes flow through the proxy.
type Direction int

const (
	// ToUpstream: read from the downstream connection, written upstream.
	ToUpstream Direction = iota
	// ToDownstream: read from the upstream connection, written downstream.
	ToDownstream
)

func (d Direction) String() string {
	if d == ToUpstream {
		return "to_upstream"
	}
	return "to_downstream"
}

// Response flags (Envoy's short names) a session can end with.
const (
	FlagNoCluster         = "NC"  // the cluster does not exist
	FlagNoHealthyUpstream = "UH"  // the cluster has no host to connect to
	FlagOverflow          = "UO"  // upstream circuit breaker
	FlagConnectFailure    = "UF"  // connecting failed
	FlagRetryLimit        = "URX" // max_connect_attempts (> 1) used up
	FlagIdleTimeout       = "SI"  // idle_timeout
	FlagDurationTimeout   = "DT"  // max_downstream_connection_duration
)

// Observer receives the life of every proxied connection, for telemetry
// (Istio's istio_tcp_* metrics, access logs). Transferred is called from
// the two copying goroutines concurrently; implementations must be safe
// for that and fast.
type Observer interface {
	// Connected: the upstream connection is established.
	Connected(s *Session)
	// Transferred: n bytes were forwarded in direction d.
	Transferred(s *Session, d Direction, n int)
	// Closed: the session is over, after a connect failure or once both
	// connections are closed. The session's fields are final.
	Closed(s *Session)
}

type nopObserver struct{}

func (nopObserver) Connected(*Session)                   {}
func (nopObserver) Transferred(*Session, Direction, int) {}
func (nopObserver) Closed(*Session)                      {}

// Session describes one proxied connection. Its exported fields are set
// by the proxy before the Observer method that first reports them and are
// not changed afterwards.
type Session struct {
	// StatPrefix is the tcp_proxy's stat_prefix.
	StatPrefix string
	// Cluster is the cluster picked for the connection.
	Cluster string
	// Downstream is the connection being proxied.
	Downstream *listener.Conn
	// Upstream is the upstream connection's remote address, nil until
	// connected.
	Upstream net.Addr
	// UpstreamPeerIdentity is the upstream host's SPIFFE ID when the
	// upstream connection verified it (a PeerIdentifier), "" otherwise.
	UpstreamPeerIdentity string
	// Start is when the proxy took the connection.
	Start time.Time
	// ConnectAttempts is the number of upstream connection attempts made.
	ConnectAttempts int

	received, sent atomic.Int64
	flags          []string // written by the session's own goroutine only
}

// ReceivedBytes is the number of bytes read from downstream and sent
// upstream so far (Envoy's %BYTES_RECEIVED%).
func (s *Session) ReceivedBytes() int64 { return s.received.Load() }

// SentBytes is the number of bytes read from upstream and sent downstream
// so far (Envoy's %BYTES_SENT%).
func (s *Session) SentBytes() int64 { return s.sent.Load() }

// ResponseFlags is the comma-separated list of flags, "-" if none, as in
// Envoy's access logs. Final when Closed is called.
func (s *Session) ResponseFlags() string {
	if len(s.flags) == 0 {
		return "-"
	}
	return strings.Join(s.flags, ",")
}

func (s *Session) addFlag(f string) {
	for _, g := range s.flags {
		if g == f {
			return
		}
	}
	s.flags = append(s.flags, f)
}
