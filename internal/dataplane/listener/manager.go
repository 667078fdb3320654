package listener

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/capture"
	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

// Defaults of Config.
const (
	// DefaultMaxConnections is the per-socket connection limit (C8).
	DefaultMaxConnections = 16384
	// DefaultHandshakeTimeout bounds listener filter inspection (C6),
	// whatever the listener's own listener_filters_timeout.
	DefaultHandshakeTimeout = 15 * time.Second
)

// ErrClosed is returned by Update and Run once the manager is closed.
var ErrClosed = errors.New("listener manager closed")

// Config configures a Manager.
type Config struct {
	// Filters builds the network filters of every filter chain. Required.
	Filters NetworkFilters
	// OriginalDst recovers a redirected connection's original destination
	// for the original_dst listener filter. Default capture.OriginalDst.
	OriginalDst func(*net.TCPConn) (netip.AddrPort, error)
	// Listen creates, binds and listens on a socket with the listener's
	// SocketOptions (transparent). Default Listen.
	Listen ListenFunc
	// MaxConnections limits the open connections accepted on each bound
	// socket, whichever listener ends up serving them (SECURITY C8):
	// beyond it new connections are closed at once, existing ones are
	// served. 0 means DefaultMaxConnections, negative means no limit.
	MaxConnections int
	// HandshakeTimeout closes a connection whose listener filters have not
	// finished this long after it was accepted (SECURITY C6: no
	// ClientHello, a request line trickling in), even on listeners whose
	// listener_filters_timeout is 0 (disabled) or
	// continue_on_listener_filters_timeout. 0 means
	// DefaultHandshakeTimeout, negative means none.
	HandshakeTimeout time.Duration
	// DrainTimeout is how long connections of a replaced or removed
	// listener keep running before they are closed. 0 lets them run to
	// their end (or until Close).
	DrainTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics defaults to no metrics. A Metrics that also implements
	// TLSMetrics receives TLS handshake failures.
	Metrics Metrics
	// Secrets resolves the SDS names of filter chains that terminate TLS
	// (certificates and trust bundles, read on every handshake). Required
	// once a listener has a tls transport socket: Update rejects such a
	// listener without it.
	Secrets secrets.Store
}

// TLSMetrics is implemented by a Metrics that counts failed downstream TLS
// handshakes (Envoy's ssl.connection_error, ssl.fail_verify_no_cert,
// ssl.fail_verify_error, ssl.fail_verify_san, by reason). reason is a
// tlssock reason label: "no_client_certificate", "unknown_ca",
// "certificate_expired", "bad_certificate", "san_mismatch",
// "protocol_version", "no_shared_cipher", "no_sni", "secret_not_ready",
// "timeout", "remote_close", "handshake_error".
type TLSMetrics interface {
	TLSHandshakeFailed(listener, reason string)
}

// Metrics receives the manager's counters (Envoy's listener statistics).
// Methods are called from connection goroutines, concurrently.
type Metrics interface {
	// Overflow counts a connection closed at accept because its socket
	// is at the connection limit (downstream_cx_overflow).
	Overflow(listener string)
	// FilterClosed counts a connection closed by the listener filters;
	// reason is a short label: "timeout", "handshake_timeout",
	// "remote_close", "client_hello_too_large", "client_hello_invalid",
	// "request_line_too_long", "error".
	FilterClosed(listener, reason string)
	// NoFilterChain counts a connection no filter chain matched
	// (no_filter_chain_match).
	NoFilterChain(listener string)
}

type nopMetrics struct{}

func (nopMetrics) Overflow(string)             {}
func (nopMetrics) FilterClosed(string, string) {}
func (nopMetrics) NoFilterChain(string)        {}

// UpdateError rejects an Update: nothing of it was applied. Errors holds
// one error per rejected listener, by name.
type UpdateError struct {
	Errors map[string]error
}

func (e *UpdateError) Error() string {
	names := make([]string, 0, len(e.Errors))
	for n := range e.Errors {
		names = append(names, n)
	}
	sort.Strings(names)
	msgs := make([]string, 0, len(names))
	for _, n := range names {
		msgs = append(msgs, e.Errors[n].Error())
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the listeners' errors, for errors.Is and errors.As.
func (e *UpdateError) Unwrap() []error { return slices.Collect(maps.Values(e.Errors)) }

// Manager runs a proxy's listeners: it binds and unbinds their sockets,
// runs listener filters, hands connections off by original destination,
// matches filter chains and starts their handlers. See the package doc.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	metrics  Metrics
	origDst  originalDstFunc
	maxConns int64
	hsTime   time.Duration

	// updateMu serializes Update, Run's start and Close's teardown; it
	// guards sockets.
	updateMu sync.Mutex
	sockets  map[string]*socket
	// state is the current configuration, read by connection goroutines.
	state atomic.Pointer[state]

	// mu guards the fields below and every generation's connection set.
	mu      sync.Mutex
	running bool
	closed  bool
	gens    map[*generation]struct{} // current and draining generations
	quit    chan struct{}
	// drainSel and stopSel are what Drain and StopListening selected.
	drainSel Selector
	stopSel  Selector

	wg sync.WaitGroup // accept loops, connections, drain timers
}

// state is one applied configuration; immutable once stored.
type state struct {
	byName map[string]*generation
	byAddr map[netip.AddrPort]*generation // hand-off index
}

// generation is one compiled version of a listener and the connections
// it serves. A changed listener gets a new generation; the old one drains.
type generation struct {
	l       *Listener
	version string  // of the resource l was compiled from
	sock    *socket // nil unless bound

	// Guarded by Manager.mu.
	conns   map[*tracked]struct{}
	retired bool
	killed  bool
	drained chan struct{} // closed when retired with no connections left
	isDone  bool          // drained is closed

	drainOnce   sync.Once // Drainers told
	releaseOnce sync.Once // io.Closers closed
}

// markDrainedLocked closes drained once. Called with Manager.mu held.
func (g *generation) markDrainedLocked() {
	if !g.isDone {
		g.isDone = true
		close(g.drained)
	}
}

// tracked is a connection being inspected or served.
type tracked struct {
	raw    net.Conn
	cancel context.CancelFunc
	gen    *generation // guarded by Manager.mu
}

// socket is a bound address. It outlives generations: an updated listener
// keeps its socket, so no connection attempt is refused meanwhile.
type socket struct {
	key     string
	opts    SocketOptions // as set on ln; changed in place by updates
	ln      net.Listener
	owner   atomic.Pointer[generation]
	active  atomic.Int64
	stopped atomic.Bool // closed by StopListening
	started bool        // guarded by Manager.updateMu
}

// New returns a Manager. It does no I/O.
func New(cfg Config) (*Manager, error) {
	if cfg.Filters == nil {
		return nil, errors.New("listener manager: Filters is required")
	}
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		sockets: map[string]*socket{},
		gens:    map[*generation]struct{}{},
		quit:    make(chan struct{}),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.metrics == nil {
		m.metrics = nopMetrics{}
	}
	m.origDst = cfg.OriginalDst
	if m.origDst == nil {
		m.origDst = capture.OriginalDst
	}
	if m.cfg.Listen == nil {
		m.cfg.Listen = Listen
	}
	switch {
	case cfg.MaxConnections == 0:
		m.maxConns = DefaultMaxConnections
	case cfg.MaxConnections > 0:
		m.maxConns = int64(cfg.MaxConnections)
	}
	switch {
	case cfg.HandshakeTimeout == 0:
		m.hsTime = DefaultHandshakeTimeout
	case cfg.HandshakeTimeout > 0:
		m.hsTime = cfg.HandshakeTimeout
	}
	m.state.Store(&state{byName: map[string]*generation{}, byAddr: map[netip.AddrPort]*generation{}})
	return m, nil
}

// Run accepts connections on the bound sockets until ctx is done or Close
// is called, then closes the manager and returns once every goroutine it
// started has ended.
func (m *Manager) Run(ctx context.Context) error {
	m.updateMu.Lock()
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		m.updateMu.Unlock()
		return ErrClosed
	case m.running:
		m.mu.Unlock()
		m.updateMu.Unlock()
		return errors.New("listener manager: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	for _, s := range m.sockets {
		m.startAccepting(s)
	}
	m.updateMu.Unlock()

	select {
	case <-ctx.Done():
	case <-m.quit:
	}
	return m.Close()
}

// Close unbinds every socket, closes every connection (their handlers'
// contexts are cancelled) and waits for the manager's goroutines.
func (m *Manager) Close() error {
	m.updateMu.Lock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.updateMu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.closed = true
	close(m.quit)
	var conns []*tracked
	gens := make([]*generation, 0, len(m.gens)+len(m.state.Load().byName))
	for g := range m.gens {
		g.killed = true
		gens = append(gens, g)
		for t := range g.conns {
			conns = append(conns, t)
		}
	}
	for _, g := range m.state.Load().byName {
		gens = append(gens, g) // a listener never connected to is not in gens
	}
	m.mu.Unlock()
	for _, s := range m.sockets {
		s.ln.Close()
	}
	m.sockets = map[string]*socket{}
	m.updateMu.Unlock()
	for _, t := range conns {
		t.kill()
	}
	m.wg.Wait()
	for _, g := range gens {
		g.release()
	}
	return nil
}

// Addr is the address the named listener's socket is bound to (useful
// with port 0), if it is bound.
func (m *Manager) Addr(name string) (net.Addr, bool) {
	g := m.state.Load().byName[name]
	if g == nil || g.sock == nil || g.sock.stopped.Load() {
		return nil, false
	}
	return g.sock.ln.Addr(), true
}

// Listeners returns the compiled listeners in force, by name.
func (m *Manager) Listeners() map[string]*Listener {
	st := m.state.Load()
	out := make(map[string]*Listener, len(st.byName))
	for n, g := range st.byName {
		out[n] = g.l
	}
	return out
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// startAccepting starts s's accept loop once. Called with updateMu held.
func (m *Manager) startAccepting(s *socket) {
	if s.started {
		return
	}
	s.started = true
	m.wg.Add(1)
	go m.accept(s)
}

// handoffTarget finds the listener for an original destination as Envoy
// does: the listener of that exact address, else the wildcard listener
// (0.0.0.0 or ::) of its port.
func (st *state) handoffTarget(dst netip.AddrPort) *generation {
	if g, ok := st.byAddr[dst]; ok {
		return g
	}
	any := netip.IPv4Unspecified()
	if dst.Addr().Is6() {
		any = netip.IPv6Unspecified()
	}
	return st.byAddr[netip.AddrPortFrom(any, dst.Port())]
}

// filterCloseReason labels why listener filters closed a connection.
func filterCloseReason(err error) string {
	for _, r := range []struct {
		err   error
		label string
	}{
		{errFiltersTimeout, "timeout"},
		{errHandshakeTimeout, "handshake_timeout"},
		{errRemoteClosed, "remote_close"},
		{errHelloTooLarge, "client_hello_too_large"},
		{errHelloInvalid, "client_hello_invalid"},
		{errRequestLineTooLong, "request_line_too_long"},
	} {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "error"
}
