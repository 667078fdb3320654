package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

var (
	errUnknownCluster = errors.New("unknown cluster")
	errNoOriginalDst  = errors.New("no original destination")
)

var _ router.Upstream = (*Manager)(nil)

// RoundTrip implements the HTTP router's Upstream: it picks a host of
// cluster (ring hash and Maglev from pick.Hash; retries avoid
// pick.Previous; ORIGINAL_DST clusters take the downstream connection's
// restored destination, or the x-envoy-original-dst-host header when the
// cluster asks for it), takes the circuit breakers of pick.Priority (and
// the retry breaker when pick.Attempt > 0) and sends req on the host's
// pool. Errors are *Error. pick.MetadataMatch is ignored, as Envoy does
// for clusters without subset load balancing (Compile rejects subsets).
//
// The pool's protocol is the cluster's: HTTP/2 (h2c) when its
// HttpProtocolOptions say explicit HTTP/2, or use_downstream_protocol and
// req.ProtoMajor is 2; HTTP/1.1 otherwise.
func (m *Manager) RoundTrip(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
	resp, info, err := m.Send(ctx, cluster, pick, req)
	var ri router.Info
	if info.Host != nil {
		ri.Host = info.Host.Key()
	}
	ri.PeerIdentity = info.PeerIdentity
	return resp, ri, err
}

// Send is RoundTrip with the pool's Info: the host and whether the
// connection was reused.
func (m *Manager) Send(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, pool.Info, error) {
	e := m.lookup(cluster)
	if e == nil {
		return nil, pool.Info{}, &Error{Kind: pool.NoCluster, Cluster: cluster, Err: errUnknownCluster}
	}
	hp, err := e.pickHTTP(&pick, req)
	if err != nil {
		return nil, pool.Info{}, &Error{Kind: pool.NoHealthyUpstream, Cluster: cluster, Err: err}
	}
	if pick.AutoHostRewrite {
		if name := hp.h.Endpoint().Hostname; name != "" {
			req.Host = name
		}
	}
	p := e.pool(hp, e.protocol(req), priority(pick.Priority))
	resp, info, err := p.RoundTrip(ctx, req, pick.Attempt > 0)
	if err != nil {
		return nil, info, wrap(cluster, err)
	}
	return resp, info, nil
}

func priority(p corev3.RoutingPriority) circuit.Priority {
	if p == corev3.RoutingPriority_HIGH {
		return circuit.High
	}
	return circuit.Default
}

// pickHTTP chooses the host of an HTTP request.
func (e *entry) pickHTTP(pick *router.PickContext, req *http.Request) (*hostPools, error) {
	if e.c.Type == upstream.OriginalDst {
		dst, err := e.originalDst(pick, req)
		if err != nil {
			return nil, err
		}
		return e.origHost(dst), nil
	}
	ctx := lb.PickContext{
		Hash:             pick.Hash,
		HasHash:          pick.HasHash,
		Attempt:          pick.Attempt,
		SelectionRetries: pick.SelectionRetries,
	}
	if len(pick.Previous) > 0 {
		ctx.Previous = e.previous(pick.Previous)
	}
	h, err := e.in.Pick(ctx)
	if err != nil {
		return nil, err
	}
	return e.hostPools(h), nil
}

// previous maps the addresses of hosts tried before to the hosts.
func (e *entry) previous(addrs []string) []*host.Host {
	out := make([]*host.Host, 0, len(addrs))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range addrs {
		if hp := e.byKey[a]; hp != nil {
			out = append(out, hp.h)
		}
	}
	return out
}

// originalDst is where an ORIGINAL_DST cluster sends a request: the
// header's address when use_http_header is set and the header holds one,
// else the downstream connection's restored destination.
func (e *entry) originalDst(pick *router.PickContext, req *http.Request) (netip.AddrPort, error) {
	if o := e.c.OriginalDst; o.UseHTTPHeader {
		if v := req.Header.Get(o.HTTPHeaderName); v != "" {
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("%s %q: not an IP address and port", o.HTTPHeaderName, v)
			}
			return ap, nil
		}
	}
	if !pick.Restored || !pick.Destination.IsValid() {
		return netip.AddrPort{}, errNoOriginalDst
	}
	return pick.Destination, nil
}
