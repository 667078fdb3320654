package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	dphttp "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
)

// Names of the explicit proxy's synthesized listener and route
// configuration. The route name is neither a port nor host:port nor
// inbound|..., so no control-plane route configuration can take it.
const (
	explicitListenerName = "explicit_proxy"
	explicitRouteName    = "trellis.explicit_proxy"
	// explicitHeadTimeout bounds the wait for a connection's first
	// request line and a CONNECT request's head.
	explicitHeadTimeout = 10 * time.Second
	// maxConnectHead bounds a CONNECT request's head.
	maxConnectHead = 8 << 10
)

// explicitProxy is the outbound side reached without traffic capture: an
// HTTP forward proxy on one address (local mode without root).
//
//	client ──(Proxy: http://ADDR)──► explicit_proxy listener (own listener.Manager)
//	  CONNECT host:port ─► outbound|port||host cluster ─► tcp_proxy   (403 if none)
//	  any other request  ─► HTTP connection manager (the outbound HCM's
//	                        settings and filters), route table "trellis.explicit_proxy":
//	                        every outbound route configuration "<port>" merged,
//	                        each domain d written "d:<port>" (and d for port 80),
//	                        so the authority's port picks the route
//	                        configuration Istio names by that port; no match: 404 NR
//
// The HCM and the tcp_proxy are the same engines the captured listeners
// use; what differs is only how a request finds its route configuration.
type explicitProxy struct {
	cfg       explicitConfig
	bind      netip.AddrPort
	dnsDomain string // "<namespace>.svc.<suffix>", for short CONNECT names
	listeners *listener.Manager
	// clusters holds the outbound cluster names CDS delivered (immutable
	// maps, swapped whole).
	clusters atomic.Pointer[map[string]bool]

	// mu serializes listener updates and guards tmpl and table.
	mu    sync.Mutex
	tmpl  *hcmv3.HttpConnectionManager // the HCM in force, nil before start
	table *route.Table                 // the last merged table that compiled
}

type explicitConfig struct {
	// Address is ip:port. Required.
	Address string
	// Node gives the namespace and DNS domain for short names.
	Node *corev3.Node
	// HTTP builds the connection manager; TCP the CONNECT tunnels.
	HTTP         listener.NetworkFilters
	TCP          *tcp.Builder
	DrainTimeout time.Duration
	Logger       *slog.Logger
}

func newExplicitProxy(cfg explicitConfig) (*explicitProxy, error) {
	bind, err := netip.ParseAddrPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("explicit proxy address %q: want ip:port (an IP address, not a name): %w", cfg.Address, err)
	}
	p := &explicitProxy{cfg: cfg, bind: bind}
	if f := strings.Split(cfg.Node.GetId(), "~"); len(f) == 4 {
		p.dnsDomain = f[3]
	}
	empty := map[string]bool{}
	p.clusters.Store(&empty)
	p.listeners, err = listener.New(listener.Config{
		Filters:      listener.Registry{dphttp.TypeURL: explicitFilters{p: p}},
		DrainTimeout: cfg.DrainTimeout,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("explicit proxy: %w", err)
	}
	return p, nil
}

// start binds the listener with the default settings (before the control
// plane has sent any).
func (p *explicitProxy) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.updateLocked(defaultExplicitHCM()); err != nil {
		return fmt.Errorf("explicit proxy: %w", err)
	}
	return nil
}

func (p *explicitProxy) run(ctx context.Context) error { return p.listeners.Run(ctx) }

func (p *explicitProxy) addr() (net.Addr, bool) { return p.listeners.Addr(explicitListenerName) }

func (p *explicitProxy) stopListening() { p.listeners.StopListening(nil) }

// drain starts a graceful drain of the explicit listener, as of a captured
// one: the connection manager answers HTTP/1 with "Connection: close" and
// sends HTTP/2 a GOAWAY while it keeps serving (listener.Drainer through
// connectFront); CONNECT tunnels go on. Settings that LDS brings later
// are drained too.
func (p *explicitProxy) drain() { p.listeners.Drain(nil) }

// activeConnections counts the explicit listener's open downstream
// connections, tunnels included.
func (p *explicitProxy) activeConnections() int { return p.listeners.ActiveConnections() }

// setTemplate takes the HTTP connection manager of the first outbound
// listener (by name) whose chain routes by a port-named route
// configuration, so that requests through the explicit proxy get the same
// filters (fault, CORS, ...) and settings as captured outbound traffic.
func (p *explicitProxy) setTemplate(ls []*listenerv3.Listener) {
	tmpl := outboundHCM(ls)
	if tmpl == nil {
		tmpl = defaultExplicitHCM()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tmpl != nil && proto.Equal(p.tmpl, tmpl) {
		return
	}
	if err := p.updateLocked(tmpl); err != nil {
		// The captured listeners took the update; the explicit proxy
		// keeps its last good settings.
		p.cfg.Logger.Warn("explicit proxy: keeping the previous HTTP settings", "error", err)
	}
}

func outboundHCM(ls []*listenerv3.Listener) *hcmv3.HttpConnectionManager {
	for _, l := range ls {
		if l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetTypedConfig().GetTypeUrl() != dphttp.TypeURL {
					continue
				}
				h := &hcmv3.HttpConnectionManager{}
				if err := anypb.UnmarshalTo(f.GetTypedConfig(), h, proto.UnmarshalOptions{}); err != nil {
					continue
				}
				if _, ok := parsePort(h.GetRds().GetRouteConfigName()); ok {
					return h
				}
			}
		}
	}
	return nil
}

// defaultExplicitHCM is used until LDS brings an outbound HCM: the router
// alone, Envoy's defaults.
func defaultExplicitHCM() *hcmv3.HttpConnectionManager {
	router, _ := anypb.New(&routerv3.Router{})
	return &hcmv3.HttpConnectionManager{
		CodecType:         hcmv3.HttpConnectionManager_AUTO,
		UseRemoteAddress:  wrapperspb.Bool(false),
		GenerateRequestId: wrapperspb.Bool(true),
		NormalizePath:     wrapperspb.Bool(true),
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	}
}

// updateLocked installs the explicit listener with tmpl's settings,
// routed by the merged table. Called with mu held.
func (p *explicitProxy) updateLocked(tmpl *hcmv3.HttpConnectionManager) error {
	h := proto.Clone(tmpl).(*hcmv3.HttpConnectionManager)
	h.StatPrefix = explicitListenerName
	h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
		ConfigSource: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
		},
		RouteConfigName: explicitRouteName,
	}}
	// The authority's port selects the route configuration: keep it.
	h.StripPortMode = nil
	h.StripMatchingHostPort = false
	tc, err := anypb.New(h)
	if err != nil {
		return err
	}
	l := &listenerv3.Listener{
		Name:             explicitListenerName,
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       p.bind.Addr().String(),
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p.bind.Port())},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Name: explicitListenerName,
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc},
			}},
		}},
	}
	if err := p.listeners.Update([]*listenerv3.Listener{l}); err != nil {
		return err
	}
	p.tmpl = tmpl
	return nil
}

// setClusters records the outbound cluster names, for CONNECT.
func (p *explicitProxy) setClusters(clusters []string) {
	names := make(map[string]bool, len(clusters))
	for _, n := range clusters {
		if strings.HasPrefix(n, "outbound|") {
			names[n] = true
		}
	}
	p.clusters.Store(&names)
}

// routes merges the outbound route configurations into the explicit
// proxy's table. A merge that does not compile (it should not) keeps the
// previous table, logged.
func (p *explicitProxy) routes(rcs map[string]*routev3.RouteConfiguration) *route.Table {
	rc := mergeOutboundRoutes(rcs)
	t, err := route.Compile(rc)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.cfg.Logger.Warn("explicit proxy: merged route table rejected; keeping the previous one", "error", err)
		return p.table
	}
	p.table = t
	return t
}

// mergeOutboundRoutes builds one route configuration from the outbound
// ones: "<port>" (shared per port, in port order), then "<host>:<port>"
// (a sniffed service bound to its VIP). Each virtual host keeps its routes
// and policies; its domains get the port ("reviews" → "reviews:9080";
// port 80 keeps the bare form too, which is what clients send for it).
// Catch-all "*" hosts (allow_any passthrough, block_all) and prefix
// wildcards ("foo.*", which cannot carry a port) are left out: an
// authority nothing claims gets 404 (NR). A domain already claimed by an
// earlier host is dropped from the later one.
func mergeOutboundRoutes(rcs map[string]*routev3.RouteConfiguration) *routev3.RouteConfiguration {
	type entry struct {
		port  uint32
		host  string // set for sniffed configurations
		rc    *routev3.RouteConfiguration
		order string
	}
	var es []entry
	for name, rc := range rcs {
		if port, ok := parsePort(name); ok {
			es = append(es, entry{port: port, rc: rc, order: fmt.Sprintf("0 %05d", port)})
			continue
		}
		if strings.Contains(name, "|") {
			continue // inbound
		}
		if i := strings.LastIndexByte(name, ':'); i > 0 {
			if port, ok := parsePort(name[i+1:]); ok {
				es = append(es, entry{port: port, host: name[:i], rc: rc, order: "1 " + name})
			}
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].order < es[j].order })
	out := &routev3.RouteConfiguration{Name: explicitRouteName, ValidateClusters: wrapperspb.Bool(false)}
	claimed := map[string]bool{}
	var maxBody uint32
	for _, e := range es {
		if v := e.rc.GetMaxDirectResponseBodySizeBytes(); v != nil && v.GetValue() > maxBody {
			maxBody = v.GetValue()
		}
		p := strconv.FormatUint(uint64(e.port), 10)
		for _, vh := range e.rc.GetVirtualHosts() {
			var doms []string
			if e.host != "" {
				doms = withPort(doms, e.host, p)
			} else {
				for _, d := range vh.GetDomains() {
					switch {
					case d == "*" || strings.HasSuffix(d, "*"):
					case hasPort(d):
						if strings.HasSuffix(d, ":"+p) {
							doms = append(doms, d)
						}
					default:
						doms = withPort(doms, d, p)
					}
				}
			}
			kept := doms[:0]
			for _, d := range doms {
				if k := strings.ToLower(d); !claimed[k] {
					claimed[k] = true
					kept = append(kept, d)
				}
			}
			if len(kept) == 0 {
				continue
			}
			c := proto.Clone(vh).(*routev3.VirtualHost)
			c.Domains = kept
			out.VirtualHosts = append(out.VirtualHosts, c)
		}
		out.InternalOnlyHeaders = append(out.InternalOnlyHeaders, e.rc.GetInternalOnlyHeaders()...)
	}
	if maxBody > 0 {
		out.MaxDirectResponseBodySizeBytes = wrapperspb.UInt32(maxBody)
	}
	return out
}

func withPort(doms []string, d, port string) []string {
	doms = append(doms, d+":"+port)
	if port == "80" {
		doms = append(doms, d)
	}
	return doms
}

// hasPort reports whether a domain ends with ":<port>" (the last colon is
// not inside an IPv6 literal).
func hasPort(d string) bool {
	i := strings.LastIndexByte(d, ':')
	return i >= 0 && strings.LastIndexByte(d, ']') < i
}

// parsePort reads a route configuration name that is a port number,
// written canonically.
func parsePort(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return uint32(n), true
}

// connectCluster finds the outbound cluster of a CONNECT target: the
// Istio cluster name outbound|<port>||<host>, the host taken as written,
// else completed as the proxy's resolver would (name → name.<ns>.svc.<suffix>,
// name.ns → name.ns.svc.<suffix>, name.ns.svc → name.ns.svc.<suffix>).
func (p *explicitProxy) connectCluster(host, port string) (string, bool) {
	names := *p.clusters.Load()
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	cands := []string{host}
	if ns, suffix, ok := strings.Cut(p.dnsDomain, ".svc."); ok {
		switch dots := strings.Count(host, "."); {
		case dots == 0:
			cands = append(cands, host+"."+ns+".svc."+suffix)
		case dots == 1:
			cands = append(cands, host+".svc."+suffix)
		case strings.HasSuffix(host, ".svc"):
			cands = append(cands, host+"."+suffix)
		}
	}
	for _, h := range cands {
		if n := "outbound|" + port + "||" + h; names[n] {
			return n, true
		}
	}
	return "", false
}

// explicitFilters builds the explicit listener's only filter: the HTTP
// connection manager behind the CONNECT front.
type explicitFilters struct{ p *explicitProxy }

func (f explicitFilters) Build(fl *listenerv3.Filter) (listener.ConnHandler, error) {
	next, err := f.p.cfg.HTTP.Build(fl)
	if err != nil {
		return nil, err
	}
	return &connectFront{p: f.p, next: next}, nil
}

// connectFront serves CONNECT requests that open a connection (what curl
// and Go's http.Transport send) as TCP tunnels and hands every other
// connection, from its first byte, to the HTTP connection manager (which
// answers a CONNECT later on a kept-alive connection with 403, as it does
// on captured listeners).
type connectFront struct {
	p    *explicitProxy
	next listener.ConnHandler
}

// Drain and Close pass through to the connection manager.
func (f *connectFront) Drain() {
	if d, ok := f.next.(listener.Drainer); ok {
		d.Drain()
	}
}

func (f *connectFront) Close() error {
	if c, ok := f.next.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (f *connectFront) Serve(ctx context.Context, c *listener.Conn) {
	if err := c.SetReadDeadline(time.Now().Add(explicitHeadTimeout)); err != nil {
		return
	}
	br := bufio.NewReaderSize(c.Conn, 4096)
	first, err := br.Peek(len("CONNECT "))
	if len(first) == 0 {
		return // closed, or nothing sent in time
	}
	if err != nil || string(first) != "CONNECT " {
		if c.SetReadDeadline(time.Time{}) != nil {
			return
		}
		f.next.Serve(ctx, replaying(c, br))
		return
	}
	f.p.tunnel(ctx, c, br)
}

// tunnel answers a CONNECT: 200 and a tcp_proxy to the target's cluster,
// or 400/403/431 and close.
func (p *explicitProxy) tunnel(ctx context.Context, c *listener.Conn, br *bufio.Reader) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if len(head) > maxConnectHead {
			reply(c, http.StatusRequestHeaderFieldsTooLarge, "CONNECT request head too large")
			return
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return // closed or timed out mid-head
		}
		if len(line) <= 2 && strings.TrimRight(string(line), "\r\n") == "" {
			break
		}
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		reply(c, http.StatusBadRequest, "malformed CONNECT request")
		return
	}
	host, port, err := net.SplitHostPort(req.Host)
	if err != nil || host == "" {
		reply(c, http.StatusBadRequest, "CONNECT needs host:port")
		return
	}
	cluster, ok := p.connectCluster(host, port)
	if !ok {
		reply(c, http.StatusForbidden, fmt.Sprintf("no outbound service %s in the mesh", net.JoinHostPort(host, port)))
		return
	}
	settings, err := tcp.Compile(&tcpv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		reply(c, http.StatusInternalServerError, "tunnel: "+err.Error())
		return
	}
	if c.SetReadDeadline(time.Time{}) != nil {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	p.cfg.TCP.Proxy(settings).Serve(ctx, replaying(c, br))
}

// reply writes a plain-text HTTP/1.1 error and leaves the connection to be
// closed.
func reply(c net.Conn, code int, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(explicitHeadTimeout))
	msg += "\n"
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
}

// replaying returns a copy of c whose reads first return what br buffered.
func replaying(c *listener.Conn, br *bufio.Reader) *listener.Conn {
	cc := *c
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		cc.Conn = &replayConn{Conn: c.Conn, pending: bytes.Clone(b)}
	}
	return &cc
}

// replayConn returns pending before reading the connection; it forwards
// half-closes (the tcp proxy relies on them).
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

func (r *replayConn) CloseWrite() error { return listener.CloseWrite(r.Conn) }
