package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// DefaultInitialFetchTimeout is Envoy's default initial_fetch_timeout.
const DefaultInitialFetchTimeout = 15 * time.Second

// Consumer receives configuration. Apply is called from Run's goroutine,
// one call at a time, in delivery order (see the package doc).
type Consumer interface {
	// Apply receives the complete set of accepted resources of one type
	// after a response changed it, or after an unsubscription dropped
	// some. It returns an error per resource it rejects; any non-nil
	// error rejects the whole response: the client NACKs it (error_detail
	// "<type> <name>: <reason>; ...") and the consumer must keep its last
	// good state, which the client also keeps. The Set is valid only
	// during the call: the consumer diffs by version (same name and
	// version: unchanged, nothing to decode), keeps what it compiles and
	// drops the messages, which must not be modified. Apply is never
	// called with an empty set because of a disconnection.
	Apply(set *Set) map[string]error
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(set *Set) map[string]error

// Apply calls f.
func (f ConsumerFunc) Apply(set *Set) map[string]error { return f(set) }

// Config configures a Client.
type Config struct {
	// Server is the xDS server's gRPC target (host:port). Required unless
	// Transport is set.
	Server string
	// Credentials secure the gRPC connection (MeshTLS: mutual TLS to the
	// control plane's secure port, 15012); nil means plaintext.
	Credentials credentials.TransportCredentials
	// DialOptions are added to the gRPC dial options (keepalive,
	// interceptors, per-RPC credentials, ...).
	DialOptions []grpc.DialOption
	// Transport, if set, replaces the gRPC transport; Server, Credentials
	// and DialOptions are then unused. The caller owns and closes it.
	Transport Transport
	// Node identifies the proxy (id type~ip~name~domain, metadata with
	// NAMESPACE, LABELS, INSTANCE_IPS, ...). Required; cloned by New.
	Node *corev3.Node
	// Consumer receives the resources. Required.
	Consumer Consumer
	// Protocol is Delta (the default) or SotW. A delta stream that the
	// server answers with Unimplemented switches the client to SotW.
	Protocol Protocol
	// InitialFetchTimeout bounds warming (see the package doc): 0 means
	// DefaultInitialFetchTimeout, negative means wait for ever.
	InitialFetchTimeout time.Duration
	// Backoff is the reconnection policy; zero fields take the defaults.
	Backoff Backoff
	// Metrics receives events; nil records nothing.
	Metrics Metrics
	// Logger; nil discards.
	Logger *slog.Logger
}

// Client is the proxy's ADS client. Create it with New and run it with
// Run; Status and Resources may be called from any goroutine.
type Client struct {
	cfg     Config
	board   *board
	running atomic.Bool
}

// New checks cfg and returns a client. It does no I/O.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Consumer == nil:
		return nil, errors.New("xdsclient: Consumer is required")
	case cfg.Node == nil || cfg.Node.GetId() == "":
		return nil, errors.New("xdsclient: Node with an id is required")
	case cfg.Server == "" && cfg.Transport == nil:
		return nil, errors.New("xdsclient: Server (or Transport) is required")
	case cfg.Protocol != Delta && cfg.Protocol != SotW:
		return nil, fmt.Errorf("xdsclient: unknown protocol %d", cfg.Protocol)
	}
	cfg.Node = proto.Clone(cfg.Node).(*corev3.Node)
	if cfg.InitialFetchTimeout == 0 {
		cfg.InitialFetchTimeout = DefaultInitialFetchTimeout
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("xds_server", cfg.Server)
	return &Client{cfg: cfg, board: newBoard(cfg.Server, cfg.Protocol)}, nil
}

func protocolFor(p Protocol) protocol {
	if p == SotW {
		return sotw{}
	}
	return delta{}
}

// Run keeps one ADS stream open until ctx is done, reconnecting with
// back-off, and returns nil then. It returns an error only if the
// transport cannot be created, or if called twice. All goroutines it
// starts have ended when it returns.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("xdsclient: Run called more than once")
	}
	tr := c.cfg.Transport
	if tr == nil {
		g, err := newGRPCTransport(c.cfg.Server, c.cfg.Credentials, c.cfg.Backoff, c.cfg.DialOptions)
		if err != nil {
			return fmt.Errorf("xdsclient: %w", err)
		}
		defer g.Close()
		tr = g
	}
	log := c.cfg.Logger
	st := newState(protocolFor(c.cfg.Protocol), &c.cfg, c.board, time.Now())
	attempt := 0
	for {
		began := time.Now()
		responded, err := c.stream(ctx, tr, st)
		if ctx.Err() != nil {
			c.board.disconnected(nil, false)
			return nil
		}
		if st.proto.kind() == Delta && !responded && status.Code(err) == codes.Unimplemented {
			log.Warn("xds server does not implement delta ADS; falling back to state of the world", "err", err)
			st.switchProtocol(sotw{})
			c.board.setProtocol(SotW)
			c.board.disconnected(err, true)
			c.cfg.Metrics.OnReconnect(0, 0, err)
			continue
		}
		if time.Since(began) >= c.cfg.Backoff.ResetAfter {
			attempt = 0
		}
		delay := c.cfg.Backoff.Delay(attempt, rand.Float64())
		attempt++
		c.board.disconnected(err, true)
		c.cfg.Metrics.OnReconnect(attempt, delay, err)
		log.Warn("xds stream ended; reconnecting", "err", err, "attempt", attempt, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			c.board.disconnected(nil, false)
			return nil
		case <-t.C:
		}
	}
}

// stream runs one ADS stream until it fails or ctx is done. Its reader
// goroutine only forwards messages; everything else happens here.
// responded reports whether the server answered at all.
func (c *Client) stream(ctx context.Context, tr Transport, st *state) (responded bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		st.endStream()
	}()
	s, err := tr.NewStream(ctx, st.proto.method())
	if err != nil {
		return false, fmt.Errorf("opening %s stream: %w", st.proto.kind(), err)
	}
	msgs := make(chan []byte)
	recvErr := make(chan error, 1)
	wg.Go(func() {
		for {
			b, err := s.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- b:
			case <-ctx.Done():
				return
			}
		}
	})
	timer := time.NewTimer(0)
	timer.Stop()
	defer timer.Stop()

	st.startStream(time.Now())
	for {
		if err := c.flush(ctx, s, st, recvErr); err != nil {
			return responded, err
		}
		if d := st.nextDeadline(); d.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(d))
		}
		select {
		case <-ctx.Done():
			return responded, ctx.Err()
		case err := <-recvErr:
			return responded, fmt.Errorf("receiving on %s stream: %w", st.proto.kind(), err)
		case b := <-msgs:
			r, err := st.proto.decode(b)
			if err != nil {
				return responded, err
			}
			if !responded {
				responded = true
				c.board.connected(time.Now())
			}
			st.handle(r, time.Now())
		case now := <-timer.C:
			st.tick(now)
		}
	}
}

// flush sends the queued requests. A failed Send ends the stream with the
// status Recv reports, as gRPC asks.
func (c *Client) flush(ctx context.Context, s Stream, st *state, recvErr <-chan error) error {
	for _, req := range st.takeOut() {
		b, err := proto.Marshal(req)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		if err := s.Send(b); err != nil {
			select {
			case rerr := <-recvErr:
				return fmt.Errorf("sending on %s stream: %w", st.proto.kind(), rerr)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
