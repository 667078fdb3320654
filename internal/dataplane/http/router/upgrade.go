package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// upgrade forwards an HTTP/1.1 Upgrade request (WebSocket) and, when the
// upstream switches protocols, splices the two connections. The upgrade
// must be allowed by the connection manager's upgrade_configs unless the
// route's own upgrade_configs entry for the type decides; otherwise the
// request is refused with 403, as Envoy. An upstream that answers anything
// but 101 gets its response relayed and the downstream connection closed,
// so bytes pipelined behind the upgrade are never read as a request (B8).
func (r *Router) upgrade(s *filter.Stream, rt *route.Route, f *route.Forward) {
	allowed := s.UpgradeAllowed
	for _, u := range f.Upgrades {
		if u.Type == s.Upgrade {
			allowed = u.Enabled
		}
	}
	if !allowed || s.Request.ProtoMajor != 1 {
		s.Respond(filter.Reply{Status: http.StatusForbidden, Details: "upgrade_failed", Close: true})
		return
	}
	ctx := s.Context()
	timeout := routeTimeout(s, f)
	tg := r.target(s, rt, f, timeout)
	tg.header.Set("Connection", "Upgrade")
	tg.header.Set("Upgrade", s.Request.Header.Get("Upgrade"))

	req := (&http.Request{
		Method:     s.Request.Method,
		URL:        &tg.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     tg.header,
		Host:       tg.authority,
	}).WithContext(ctx)
	pick := routePick(s, f)
	if f.Hash != nil {
		pick.Hash, pick.HasHash = f.Hash.Hash(&s.Routing)
	}
	// The upstream connection outlives the route timeout once switched,
	// so the request runs on the stream's context and the timeout, if
	// any, only bounds the wait for the upgrade response.
	hctx := ctx
	var res result
	if timeout <= 0 {
		res.resp, res.info, res.err = r.up.RoundTrip(ctx, s.Cluster, pick, req)
	} else {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeoutCause(ctx, timeout, errRouteTimeout)
		defer cancel()
		res = r.roundTripBefore(hctx, ctx, s.Cluster, pick, req)
	}
	s.Record.Attempts = 1
	s.Record.UpstreamHost = res.info.Host
	s.Record.UpstreamPeerIdentity = res.info.PeerIdentity
	if res.err != nil {
		r.fail(s, f, hctx, nil, res.err)
		return
	}
	resp := res.resp
	if resp.StatusCode != http.StatusSwitchingProtocols {
		r.respond(s, ctx, resp, nil)
		return
	}
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		_ = resp.Body.Close()
		s.SetFlags(filter.UpstreamProtocolError)
		s.Respond(filter.Reply{Status: http.StatusBadGateway, Details: "upgrade_failed", Close: true})
		return
	}
	defer up.Close()
	conn, brw, err := http.NewResponseController(s.Writer()).Hijack()
	if err != nil {
		s.Respond(filter.Reply{Status: http.StatusInternalServerError, Details: "upgrade_failed", Close: true})
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.Close()
		_ = up.Close()
	})
	defer stop()

	h := resp.Header.Clone()
	s.Switched(h)
	resp.Header, resp.Body = h, nil
	if err := resp.Write(brw); err != nil {
		s.SetFlags(filter.DownstreamConnectionTermination)
		return
	}
	if err := brw.Flush(); err != nil {
		s.SetFlags(filter.DownstreamConnectionTermination)
		return
	}
	s.Record.Details = "via_upstream"
	var sent, received atomic.Int64
	errc := make(chan error, 1)
	go func() {
		// Client to upstream; brw.Reader first yields what net/http had
		// already buffered from the client.
		n, err := io.Copy(up, brw.Reader)
		received.Add(n)
		closeWrite(up)
		errc <- err
	}()
	n, _ := r.copyStream(conn, up)
	sent.Add(n)
	_ = conn.Close()
	_ = up.Close()
	<-errc
	s.Record.BytesSent += sent.Load()
	s.Record.BytesReceived += received.Load()
}

// roundTripBefore runs a round trip on ctx and gives up waiting for it
// when limit ends first (a late response is closed when it comes).
func (r *Router) roundTripBefore(limit, ctx context.Context, cluster string, pick PickContext, req *http.Request) result {
	done := make(chan result, 1)
	go func() {
		resp, info, err := r.up.RoundTrip(ctx, cluster, pick, req)
		done <- result{resp: resp, info: info, err: err}
	}()
	select {
	case res := <-done:
		return res
	case <-limit.Done():
		go func() {
			if late := <-done; late.resp != nil {
				_ = late.resp.Body.Close()
			}
		}()
		return result{err: context.Cause(limit)}
	}
}

// copyStream copies upstream to downstream with a pooled buffer.
func (r *Router) copyStream(dst net.Conn, src io.Reader) (int64, error) {
	bp := r.copyBufs.Get().(*[]byte)
	defer r.copyBufs.Put(bp)
	return io.CopyBuffer(dst, src, *bp)
}

// closeWrite half-closes c when it can.
func closeWrite(c io.Closer) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
