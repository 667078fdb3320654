package http

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// DefaultBufferLimit is how much of a request body the router keeps for
// retries and mirrors when neither the route nor its virtual host sets
// per_request_buffer_limit_bytes.
const DefaultBufferLimit = 64 << 10

// Deps are what a connection manager needs from the rest of the proxy.
type Deps struct {
	// Routes hands out the route tables RDS delivers. Required when the
	// HttpConnectionManager uses rds.
	Routes RouteProvider
	// Upstream sends requests to clusters. Required.
	Upstream router.Upstream
	// Observer receives every request's record. Optional.
	Observer Observer
	// Stats receives the limit counters (requests refused and connections
	// closed at a limit or timeout; see Stat). Optional.
	Stats StatsSink
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Random draws the per-request random values (route runtime
	// fractions, weighted clusters, fault and mirror sampling, retry
	// jitter). Default: math/rand/v2.
	Random func() uint64
	// Filters adds HTTP filter factories by typed_config type URL; they
	// override the built-in fault, cors and router.
	Filters filter.Registry
	// BufferLimit is the default per-request body buffer for retries and
	// mirrors (0: DefaultBufferLimit).
	BufferLimit int
	// MaxMirrors bounds the mirrored requests in flight per manager (0:
	// router.DefaultMaxMirrors).
	MaxMirrors int
	// LocalIdentity is the URI SAN (SPIFFE ID) of the proxy's own
	// certificate: the By= element of the x-forwarded-client-cert entry it
	// adds for a mutual TLS peer (APPEND_FORWARD, SANITIZE_SET). "": none.
	LocalIdentity string
}

// Observer receives the record of each request once it has ended, on the
// request's goroutine. It must not block and must not keep the record.
type Observer interface {
	Observe(r *filter.Record)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(r *filter.Record)

// Observe implements Observer.
func (f ObserverFunc) Observe(r *filter.Record) { f(r) }

// RouteProvider hands out the slot holding the current route table of an
// RDS route configuration. The manager asks once, at Compile, and loads
// the slot atomically for every request, so an RDS update reaches
// requests without recompiling the manager.
type RouteProvider interface {
	RouteSlot(name string) *RouteSlot
}

// RouteSlot holds the current compiled table of one route configuration;
// nil until RDS delivers it (requests then get 404 NR, as Envoy).
type RouteSlot struct {
	p atomic.Pointer[route.Table]
}

// Load returns the current table.
func (s *RouteSlot) Load() *route.Table { return s.p.Load() }

// Store replaces the table.
func (s *RouteSlot) Store(t *route.Table) { s.p.Store(t) }

// RouteTables is a RouteProvider that the xDS client feeds: Set on every
// RDS update. Slots are created on first use and never removed, so a
// manager keeps its slot across updates.
type RouteTables struct {
	mu    sync.Mutex
	slots map[string]*RouteSlot
}

// RouteSlot implements RouteProvider.
func (t *RouteTables) RouteSlot(name string) *RouteSlot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slots == nil {
		t.slots = map[string]*RouteSlot{}
	}
	s, ok := t.slots[name]
	if !ok {
		s = &RouteSlot{}
		t.slots[name] = s
	}
	return s
}

// Set stores the table of a route configuration (nil removes it).
func (t *RouteTables) Set(name string, tbl *route.Table) {
	t.RouteSlot(name).Store(tbl)
}
