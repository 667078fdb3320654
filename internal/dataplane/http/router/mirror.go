package router

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// mirrorPool runs mirrored (shadow) requests: fire and forget, never
// affecting the main response, at most cap(sem) at a time (beyond that
// they are dropped and counted), each bounded by the route timeout (or
// route.DefaultTimeout when the route has none).
type mirrorPool struct {
	sem chan struct{}
	wg  sync.WaitGroup
	// ctx is the mirrors' parent: the router's lifetime, not a request's
	// (a mirror outlives the request it copies). Close cancels it.
	ctx     context.Context
	cancel  context.CancelFunc
	dropped atomic.Uint64
}

func (p *mirrorPool) init(n int) {
	if n <= 0 {
		n = DefaultMaxMirrors
	}
	p.sem = make(chan struct{}, n)
	p.ctx, p.cancel = context.WithCancel(context.Background())
}

func (p *mirrorPool) close() {
	p.cancel()
	p.wg.Wait()
}

// Dropped is how many mirrored requests were dropped because too many
// were in flight.
func (r *Router) Dropped() uint64 { return r.mirrors.dropped.Load() }

// mirror sends copies of the request to the route's mirror clusters, as
// Envoy's shadowing: each policy sampled on its own, the authority
// suffixed with "-shadow" (unless disabled), the body (when there is one)
// the complete buffered request body.
func (r *Router) mirror(s *filter.Stream, f *route.Forward, tg *target, body []byte, timeout time.Duration) {
	if timeout <= 0 {
		timeout = route.DefaultTimeout
	}
	for i := range f.Mirrors {
		m := &f.Mirrors[i]
		if !m.Sample(s.Rand()) {
			continue
		}
		cluster := m.Cluster
		if m.ClusterHeader != "" {
			v, ok := s.Routing.Header(m.ClusterHeader)
			if !ok || v == "" {
				continue
			}
			cluster = v
		}
		host := tg.authority
		if m.HostRewrite != "" {
			host = m.HostRewrite
		}
		if !m.DisableShadowHostSuffixAppend {
			host = shadowHost(host)
		}
		select {
		case r.mirrors.sem <- struct{}{}:
		default:
			r.mirrors.dropped.Add(1)
			continue
		}
		u := tg.url
		u.Host = host
		req := &http.Request{
			Method: s.Request.Method,
			URL:    &u,
			Header: tg.header.Clone(),
			Host:   host,
		}
		setUpstreamProto(req, s.Request)
		if len(body) > 0 {
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
		}
		pick := PickContext{Source: s.Conn.Source, Destination: s.Conn.Destination, Restored: s.Conn.Restored}
		r.mirrors.wg.Add(1)
		go r.sendMirror(cluster, pick, req, timeout)
	}
}

func (r *Router) sendMirror(cluster string, pick PickContext, req *http.Request, timeout time.Duration) {
	defer r.mirrors.wg.Done()
	defer func() { <-r.mirrors.sem }()
	ctx, cancel := context.WithTimeout(r.mirrors.ctx, timeout)
	defer cancel()
	resp, _, err := r.up.RoundTrip(ctx, cluster, pick, req.WithContext(ctx))
	if err != nil {
		r.log.Debug("mirrored request failed", "cluster", cluster, "error", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
}

// shadowHost appends "-shadow" to the host part of an authority, before
// its port, as Envoy's shadowAppendedHost.
func shadowHost(authority string) string {
	i := strings.LastIndexByte(authority, ':')
	if i < 0 || strings.LastIndexByte(authority, ']') > i {
		return authority + "-shadow"
	}
	return authority[:i] + "-shadow" + authority[i:]
}
