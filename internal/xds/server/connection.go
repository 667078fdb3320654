package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

// connection is one ADS stream of one proxy.
//
// Ownership: the stream goroutine (serve's loop) owns everything except the
// fields marked "under mu", which the push dispatcher (pending) and
// Clients() (status) also touch.
type connection struct {
	s     *Server
	id    string // set by register
	proxy *model.Proxy
	// agent is the proxy's software and version (ISTIO_VERSION metadata,
	// else the node's user agent), for proxy-status.
	agent string
	delta bool
	since time.Time
	// snap is the snapshot of the last push event this connection processed
	// (set by register to the server's current one): the "before" side of
	// the next event's change set, for scoping.
	snap  *model.Snapshot
	nonce uint64 // last nonce issued on this stream
	// types holds per-type state by push order; a nil entry means the proxy
	// has not asked for the type. Pointer writes under mu.
	types [numTypes]*typeState

	signal chan struct{} // capacity 1: a push is pending
	// inspect carries debug requests (config_dump) to the stream goroutine,
	// which answers with a copy of its state; quit is closed when the
	// stream goroutine has left its loop.
	inspect chan chan<- view
	quit    <-chan struct{}

	mu      sync.Mutex
	pending *pushEvent // under mu: deliver-latest mailbox
}

// handler is the protocol-specific half of a stream (sotw or delta).
type handler[Req any] interface {
	// request handles one request from the proxy.
	request(req *Req) error
	// push sends what a push event changed.
	push(ev *pushEvent) error
}

// errStopping ends streams when the server shuts down.
var errStopping = status.Error(codes.Unavailable, "xds server is shutting down")

// serve runs one stream: it reads the first request (which must carry the
// node), registers the connection, then handles requests and pushes on this
// goroutine until the stream ends. A second goroutine only reads requests.
func serve[Req any](s *Server, ctx context.Context, delta bool, auth StreamAuth, recv func() (*Req, error),
	node func(*Req) *core.Node, newHandler func(*connection) handler[Req]) error {
	reqs := make(chan *Req)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	// The reader ends when Recv fails, which gRPC guarantees once this
	// handler has returned, or when done is closed.
	go func() {
		for {
			r, err := recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- r:
			case <-done:
				return
			}
		}
	}()

	var first *Req
	timer := time.NewTimer(s.nodeWait)
	select {
	case first = <-reqs:
		timer.Stop()
	case err := <-recvErr:
		timer.Stop()
		return streamEnd(err)
	case <-timer.C:
		return status.Errorf(codes.DeadlineExceeded, "no discovery request within %v", s.nodeWait)
	case <-ctx.Done():
		timer.Stop()
		return status.FromContextError(ctx.Err()).Err()
	case <-s.stop:
		timer.Stop()
		return errStopping
	}

	proxy, err := model.ParseNode(node(first))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "first discovery request: %v", err)
	}
	if auth != nil {
		if err := auth(ctx, proxy); err != nil {
			s.log.Warn("xds stream refused", "proxy", proxy.ID, "err", err)
			if _, ok := status.FromError(err); ok {
				return err
			}
			return status.Errorf(codes.PermissionDenied, "proxy %q: %v", proxy.ID, err)
		}
	}
	if s.authorize != nil {
		if err := s.authorize(ctx, proxy); err != nil {
			s.log.Warn("xds stream not authorized", "proxy", proxy.ID, "err", err)
			return status.Errorf(codes.PermissionDenied, "proxy %q: %v", proxy.ID, err)
		}
	}
	c := &connection{s: s, proxy: proxy, agent: agentOf(proxy, node(first)), delta: delta, since: time.Now(),
		signal: make(chan struct{}, 1), inspect: make(chan chan<- view), quit: done}
	if !s.register(c) {
		return errStopping
	}
	defer s.unregister(c)
	s.log.Info("xds proxy connected", "proxy", proxy.ID, "connection", c.id, "delta", delta)

	h := newHandler(c)
	err = h.request(first)
	for err == nil {
		select {
		case r := <-reqs:
			err = h.request(r)
		case <-c.signal:
			if ev := c.take(); ev != nil {
				err = h.push(ev)
			}
		case reply := <-c.inspect:
			reply <- c.view()
		case e := <-recvErr:
			err = streamEnd(e)
			if err == nil {
				err = io.EOF
			}
		case <-ctx.Done():
			err = status.FromContextError(ctx.Err()).Err()
		case <-s.stop:
			err = errStopping
		}
	}
	s.log.Info("xds proxy disconnected", "proxy", proxy.ID, "connection", c.id, "reason", err)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// streamEnd maps a Recv error to the handler's result.
func streamEnd(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Unavailable, "receiving discovery request: %v", err)
}

// enqueue hands a push event to the connection without blocking: a pending
// event not yet taken is merged with the new one (deliver-latest).
func (c *connection) enqueue(ev *pushEvent) {
	c.mu.Lock()
	if c.pending == nil {
		c.pending = ev
	} else {
		c.pending = merge(c.pending, ev)
	}
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *connection) take() *pushEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.pending
	c.pending = nil
	return ev
}

// state returns the state of type i, creating it on first use.
func (c *connection) state(i int) (ts *typeState, created bool) {
	if ts = c.types[i]; ts != nil {
		return ts, false
	}
	ts = &typeState{}
	c.mu.Lock()
	c.types[i] = ts
	c.mu.Unlock()
	return ts, true
}

// nextNonce issues a nonce unique on this stream.
func (c *connection) nextNonce() uint64 {
	c.nonce++
	return c.nonce
}

// send runs fn (one stream Send) so that a blocked Send cannot hold the
// stream goroutine past SendTimeout or server shutdown. Only one send runs
// at a time; if the stream is abandoned, the pending Send returns when gRPC
// tears the stream down.
func (c *connection) send(ctx context.Context, i int, fn func() error) error {
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	var timeout <-chan time.Time
	if c.s.sendWait > 0 {
		t := time.NewTimer(c.s.sendWait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-errc:
		c.s.metrics.sendTime.Observe(time.Since(start).Seconds())
		if err != nil {
			return fmt.Errorf("sending %s: %w", xds.ShortName(typeURLAt(i)), err)
		}
		c.s.metrics.pushes.WithLabelValues(metricType(i)).Inc()
		return nil
	case <-timeout:
		c.s.metrics.sendTimeouts.Inc()
		c.s.log.Warn("xds send timed out, closing stream", "proxy", c.proxy.ID, "type", xds.ShortName(typeURLAt(i)), "timeout", c.s.sendWait)
		return status.Errorf(codes.DeadlineExceeded, "sending %s: timed out after %v", xds.ShortName(typeURLAt(i)), c.s.sendWait)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-c.s.stop:
		return errStopping
	}
}

// sent records a response in the type's status.
func (c *connection) sent(ts *typeState, version string, nonce uint64, start time.Time) {
	c.mu.Lock()
	ts.version, ts.nonce = version, nonce
	c.mu.Unlock()
	ts.responded = true
	if !start.IsZero() && (ts.pushStart == 0 || start.UnixNano() < ts.pushStart) {
		ts.pushStart = start.UnixNano()
	}
}

// ack records an ACK of the type's last response.
func (c *connection) ack(i int, ts *typeState) {
	c.mu.Lock()
	ts.ackedVersion, ts.ackedNonce = ts.version, ts.nonce
	c.mu.Unlock()
	if ts.pushStart != 0 {
		c.s.metrics.convergence.Observe(time.Since(time.Unix(0, ts.pushStart)).Seconds())
		ts.pushStart = 0
	}
}

// maxNACKLen bounds the error text kept from a NACK.
const maxNACKLen = 1024

// nack records a NACK of the type's last response. The rejected content is
// not resent: the next response for the type goes out when the generated
// content differs from what was rejected.
func (c *connection) nack(i int, ts *typeState, msg string) {
	if len(msg) > maxNACKLen {
		msg = msg[:maxNACKLen]
	}
	c.mu.Lock()
	ts.nack, ts.nackedNonce = msg, ts.nonce
	c.mu.Unlock()
	ts.pushStart = 0
	c.s.metrics.rejects.WithLabelValues(metricType(i)).Inc()
	c.s.log.Warn("xds proxy rejected config (NACK)", "proxy", c.proxy.ID, "type", xds.ShortName(typeURLAt(i)),
		"version", ts.version, "nonce", formatNonce(ts.nonce), "err", msg)
}

// expired counts a request whose nonce is not the last one sent.
func (c *connection) expired(i int, nonce string) {
	c.s.metrics.expiredNonce.WithLabelValues(metricType(i)).Inc()
	c.s.log.Debug("xds request with stale nonce ignored", "proxy", c.proxy.ID, "type", xds.ShortName(typeURLAt(i)), "nonce", nonce)
}

// checkNames enforces MaxResourceNames.
func (c *connection) checkNames(i, n int) error {
	if n > c.s.maxNames {
		return status.Errorf(codes.ResourceExhausted, "%s: %d resource names exceed the limit of %d",
			xds.ShortName(typeURLAt(i)), n, c.s.maxNames)
	}
	return nil
}

// generate calls the generator for type i with a generation slot held.
// A generator error is logged and counted; the type is then skipped for
// this proxy until the next push (one bad result never fails the stream).
func (c *connection) generate(snap *model.Snapshot, i int, names []string) ([]xds.Resource, bool, error) {
	if err := c.s.acquire(); err != nil {
		return nil, false, err
	}
	res, err := c.s.gen.Generate(snap, c.proxy, typeURLAt(i), names)
	c.s.release()
	if err != nil {
		c.s.metrics.internalErrors.WithLabelValues(metricType(i)).Inc()
		c.s.log.Error("generating xds resources", "proxy", c.proxy.ID, "type", xds.ShortName(typeURLAt(i)),
			"snapshot", snap.Version, "err", err)
		return nil, false, nil
	}
	if !c.wildcard(i) && wildcardType(i) {
		// Generators return EDS and RDS by name already; a named CDS or LDS
		// subscription gets only what it named.
		res = onlyNamed(res, names)
	}
	return res, true, nil
}

// onlyNamed keeps the resources named in names (sorted), for generators
// that return a whole type whatever was asked. res is shared and not
// modified; a new slice is returned only when something is dropped.
func onlyNamed(res []xds.Resource, names []string) []xds.Resource {
	keep := 0
	for _, r := range res {
		if _, ok := slices.BinarySearch(names, r.Name); ok {
			keep++
		}
	}
	if keep == len(res) {
		return res
	}
	out := make([]xds.Resource, 0, keep)
	for _, r := range res {
		if _, ok := slices.BinarySearch(names, r.Name); ok {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) acquire() error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-s.stop:
		return errStopping
	}
}

func (s *Server) release() { <-s.sem }
