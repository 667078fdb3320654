package manager

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// entry is one version of a cluster: its compiled settings, its Instance
// (possibly shared with the previous version, see source.sameInstance) and the
// connection pools of its hosts.
type entry struct {
	name string
	src  source // what c was compiled from
	c    *upstream.Cluster
	in   *upstream.Instance
	dial dialer
	log  *slog.Logger

	// warming: an EDS cluster whose assignment has not arrived, or a DNS
	// cluster not resolved yet.
	warming atomic.Bool
	// retired: replaced or removed; its pools drain.
	retired atomic.Bool
	// cancel stops the timer goroutine; guarded by Manager.mu.
	cancel context.CancelFunc

	// hosts maps *host.Host to *hostPools, read on every request.
	hosts sync.Map

	mu sync.Mutex
	// byKey are the hostPools by address (for PickContext.Previous and
	// the admin interface), orig the ORIGINAL_DST hosts; both made on
	// first use (most clusters of a sidecar carry no request).
	byKey map[string]*hostPools
	orig  map[netip.AddrPort]*hostPools
	// dnsLast is the last answer per name of a DNS cluster.
	dnsLast map[string][]netip.Addr
	// dnsFailures counts consecutive failed resolutions (back-off).
	dnsFailures int
}

func newEntry(name string, src source, c *upstream.Cluster, d dialer, log *slog.Logger) *entry {
	return &entry{name: name, src: src, c: c, dial: d, log: log}
}

// hostPools are the connection pools of one host, by protocol and
// routing priority, created on first use.
type hostPools struct {
	h *host.Host
	// used since the last ORIGINAL_DST cleanup sweep.
	used  atomic.Bool
	pools [pool.NumProtocols][circuit.NumPriorities]atomic.Pointer[pool.Pool]

	mu      sync.Mutex // creation and drain
	drained bool
}

func (hp *hostPools) each(f func(*pool.Pool)) {
	for i := range hp.pools {
		for j := range hp.pools[i] {
			if p := hp.pools[i][j].Load(); p != nil {
				f(p)
			}
		}
	}
}

// drain drains the pools and any created later.
func (hp *hostPools) drain() {
	hp.mu.Lock()
	hp.drained = true
	hp.mu.Unlock()
	hp.each((*pool.Pool).Drain)
}

// adopt takes over the state of prev, whose Instance e shares.
func (e *entry) adopt(prev *entry) {
	e.warming.Store(prev.warming.Load())
	prev.mu.Lock()
	defer prev.mu.Unlock()
	for n, a := range prev.dnsLast {
		if e.dnsLast == nil {
			e.dnsLast = map[string][]netip.Addr{}
		}
		e.dnsLast[n] = a
	}
}

// update gives the cluster new endpoints.
func (e *entry) update(eps *upstream.EndpointSet) error {
	if err := e.in.Update(eps); err != nil {
		return err
	}
	e.warming.Store(false)
	e.syncHosts()
	return nil
}

// syncHosts drains the pools of hosts that left the Instance (marked
// removed by its Update). A request that picked such a host just before
// gets a drained hostPools (hostPools checks the mark under e.mu, which
// this scan holds too).
func (e *entry) syncHosts() {
	if e.c.Type == upstream.OriginalDst {
		return
	}
	var gone []*hostPools
	e.mu.Lock()
	for k, hp := range e.byKey {
		if hp.h.Removed() {
			delete(e.byKey, k)
			e.hosts.Delete(hp.h)
			gone = append(gone, hp)
		}
	}
	e.mu.Unlock()
	for _, hp := range gone {
		hp.drain()
	}
}

// hostPools returns the pools of a host picked from the Instance.
func (e *entry) hostPools(h *host.Host) *hostPools {
	if v, ok := e.hosts.Load(h); ok {
		return v.(*hostPools)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.hosts.Load(h); ok {
		return v.(*hostPools)
	}
	hp := &hostPools{h: h}
	if e.retired.Load() || h.Removed() {
		// Picked just before its cluster or the host went away: serve
		// this request, keep nothing.
		hp.drained = true
		return hp
	}
	e.hosts.Store(h, hp)
	if e.byKey == nil {
		e.byKey = map[string]*hostPools{}
	}
	e.byKey[h.Key()] = hp
	return hp
}

// origHost returns the ORIGINAL_DST host of a destination.
func (e *entry) origHost(dst netip.AddrPort) *hostPools {
	if p := e.c.OriginalDst.UpstreamPortOverride; p != 0 && p <= 65535 {
		dst = netip.AddrPortFrom(dst.Addr(), uint16(p))
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	e.mu.Lock()
	hp := e.orig[dst]
	if hp == nil {
		h := host.New(host.Endpoint{Address: host.Address{
			Kind: host.Socket, Host: dst.Addr().String(), IP: dst.Addr(), Port: uint32(dst.Port()),
		}}, nil)
		hp = &hostPools{h: h, drained: e.retired.Load()}
		if e.orig == nil {
			e.orig = map[netip.AddrPort]*hostPools{}
		}
		if e.byKey == nil {
			e.byKey = map[string]*hostPools{}
		}
		e.orig[dst] = hp
		e.byKey[h.Key()] = hp
	}
	e.mu.Unlock()
	hp.used.Store(true)
	return hp
}

// cleanupOrig forgets the ORIGINAL_DST hosts unused since the last sweep
// (Envoy's cleanup_interval) and drains their pools.
func (e *entry) cleanupOrig() {
	var gone []*hostPools
	e.mu.Lock()
	for dst, hp := range e.orig {
		if !hp.used.Swap(false) && hp.h.Stats.RqActive.Load() == 0 {
			delete(e.orig, dst)
			delete(e.byKey, hp.h.Key())
			gone = append(gone, hp)
		}
	}
	e.mu.Unlock()
	for _, hp := range gone {
		hp.drain()
	}
}

// pool returns the pool of hp for a protocol and priority.
func (e *entry) pool(hp *hostPools, proto pool.Protocol, prio circuit.Priority) *pool.Pool {
	slot := &hp.pools[proto][prio]
	if p := slot.Load(); p != nil {
		return p
	}
	hp.mu.Lock()
	defer hp.mu.Unlock()
	if p := slot.Load(); p != nil {
		return p
	}
	p, err := pool.New(e.poolConfig(hp.h, proto, prio))
	if err != nil {
		panic("manager: invalid pool config: " + err.Error()) // every field is set above
	}
	if hp.drained {
		p.Drain()
	}
	slot.Store(p)
	return p
}

// dialHTTP opens a pooled connection to h; one whose transport socket
// verified the host's identity comes as a *pool.PeerConn.
func (e *entry) dialHTTP(ctx context.Context, h *host.Host, proto pool.Protocol) (net.Conn, error) {
	c, peer, err := e.dial.dial(ctx, h, e.dial.httpALPN[proto])
	if err != nil || peer == "" {
		return c, err
	}
	return &pool.PeerConn{Conn: c, Peer: peer}, nil
}

func (e *entry) poolConfig(h *host.Host, proto pool.Protocol, prio circuit.Priority) pool.Config {
	hc := e.c.HTTP
	return pool.Config{
		Host:                     h,
		Breakers:                 e.in.Breakers(prio),
		PerHostMaxConnections:    e.c.PerHostMaxConnections[prio],
		Protocol:                 proto,
		Dial:                     func(ctx context.Context) (net.Conn, error) { return e.dialHTTP(ctx, h, proto) },
		ConnectTimeout:           e.c.ConnectTimeout,
		IdleTimeout:              hc.IdleTimeout,
		MaxConnectionDuration:    hc.MaxConnectionDuration,
		MaxRequestsPerConnection: hc.MaxRequestsPerConnection,
		MaxConcurrentStreams:     hc.HTTP2.GetMaxConcurrentStreams().GetValue(),
		HTTP2:                    http2Config(hc.HTTP2),
		Logger:                   e.log,
	}
}

// http2Config maps Envoy's HTTP/2 options onto net/http's: flow-control
// windows and keepalive pings.
func http2Config(o *corev3.Http2ProtocolOptions) *http.HTTP2Config {
	if o == nil {
		return nil
	}
	var c http.HTTP2Config
	set := false
	if v := o.GetInitialStreamWindowSize(); v != nil {
		c.MaxReceiveBufferPerStream, set = int(v.GetValue()), true
	}
	if v := o.GetInitialConnectionWindowSize(); v != nil {
		c.MaxReceiveBufferPerConnection, set = int(v.GetValue()), true
	}
	if ka := o.GetConnectionKeepalive(); ka != nil {
		c.SendPingTimeout, set = ka.GetInterval().AsDuration(), true
		if t := ka.GetTimeout(); t != nil {
			c.PingTimeout = t.AsDuration()
		}
	}
	if !set {
		return nil
	}
	return &c
}

// protocol is the protocol of a request to this cluster. Without TLS
// there is no ALPN: AUTO means HTTP/1.1, as in Envoy.
func (e *entry) protocol(req *http.Request) pool.Protocol {
	switch e.c.HTTP.Protocol {
	case upstream.HTTP2:
		return pool.HTTP2
	case upstream.UseDownstream:
		if req.ProtoMajor == 2 {
			return pool.HTTP2
		}
	}
	return pool.HTTP1
}

// drain drains every pool of the cluster (it was retired).
func (e *entry) drain() {
	for _, hp := range e.allHosts() {
		hp.drain()
	}
}

// close closes every pool of the cluster (shutdown).
func (e *entry) close() {
	for _, hp := range e.allHosts() {
		hp.mu.Lock()
		hp.drained = true
		hp.mu.Unlock()
		hp.each((*pool.Pool).Close)
	}
}

// empty reports whether no pool has anything left (a retired cluster can
// be forgotten).
func (e *entry) empty() bool {
	for _, hp := range e.allHosts() {
		empty := true
		hp.each(func(p *pool.Pool) { empty = empty && p.Empty() })
		if !empty {
			return false
		}
	}
	return true
}

func (e *entry) allHosts() []*hostPools {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*hostPools, 0, len(e.byKey))
	for _, hp := range e.byKey {
		out = append(out, hp)
	}
	return out
}

// needsRun reports whether the cluster has timers.
func (e *entry) needsRun() bool {
	return e.c.Outlier != nil || e.c.Type == upstream.OriginalDst || e.isDNS()
}

func (e *entry) isDNS() bool {
	return e.c.Type == upstream.StrictDNS || e.c.Type == upstream.LogicalDNS
}

// run is the cluster's timer goroutine: outlier detection sweeps, DNS
// refreshes and ORIGINAL_DST host cleanup, until ctx is done.
func (e *entry) run(ctx context.Context, m *Manager) {
	var outlierC, cleanupC, dnsC <-chan time.Time
	if o := e.c.Outlier; o != nil {
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		outlierC = t.C
	}
	if e.c.Type == upstream.OriginalDst {
		t := time.NewTicker(e.c.OriginalDst.CleanupInterval)
		defer t.Stop()
		cleanupC = t.C
	}
	var dnsT *time.Timer
	if e.isDNS() {
		dnsT = time.NewTimer(0)
		defer dnsT.Stop()
		dnsC = dnsT.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-outlierC:
			e.in.Tick(m.cfg.Now())
		case <-cleanupC:
			e.cleanupOrig()
		case <-dnsC:
			dnsT.Reset(e.resolve(ctx, m.cfg.Resolver, m.cfg.Rand))
		}
	}
}
