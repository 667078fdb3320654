package http

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	nethttp "net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter/cors"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter/extauthz"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter/fault"
	jwtfilter "github.com/trellismesh/trellis/internal/dataplane/http/filter/jwt"
	rbacfilter "github.com/trellismesh/trellis/internal/dataplane/http/filter/rbac"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// Defaults, Envoy's unless noted.
const (
	DefaultMaxHeadersCount      = 100
	DefaultMaxRequestHeadersKB  = 60
	DefaultStreamIdleTimeout    = 5 * time.Minute
	DefaultIdleTimeout          = time.Hour
	DefaultMaxConcurrentStreams = 100 // Envoy: 2^31-1; bounded here (SECURITY C1)
	// DefaultRequestHeadersTimeout applies when request_headers_timeout is
	// unset (Envoy: none). An explicit 0 disables it. It closes slowloris
	// connections (SECURITY C6).
	DefaultRequestHeadersTimeout = 10 * time.Second
	DefaultServerName            = "envoy"
)

// Error is a compile error: it names the connection manager (stat_prefix),
// the offending field and the reason, for the NACK.
type Error struct {
	StatPrefix string
	Field      string
	Err        error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("http_connection_manager %q: %v", e.StatPrefix, e.Err)
	}
	return fmt.Sprintf("http_connection_manager %q: %s: %v", e.StatPrefix, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// settings are the compiled knobs of one connection manager.
type settings struct {
	statPrefix string
	codec      hcmv3.HttpConnectionManager_CodecType
	norm       normalizer
	limits     limits
	timeouts   timeouts
	fwd        forwarding
	hosts      hostRules
	server     serverHeader
	upgrades   map[string]bool
	h2         nethttp.HTTP2Config
	h2lim      h2Limits // flood limits of the HTTP/2 guard (h2guard.go)
	// localIdentity is Deps.LocalIdentity (x-forwarded-client-cert By=).
	localIdentity string
}

type limits struct {
	maxHeadersCount int
	maxHeaderBytes  int
	underscores     corev3.HttpProtocolOptions_HeadersWithUnderscoresAction
}

type timeouts struct {
	streamIdle     time.Duration // 0: none
	request        time.Duration // 0: none
	requestHeaders time.Duration // 0: none
	idle           time.Duration // 0: none
}

type forwarding struct {
	useRemoteAddress    bool
	xffTrustedHops      int
	skipXFFAppend       bool
	generateRequestID   bool
	preserveExternalID  bool
	requestIDInResponse bool
	clientCert          hcmv3.HttpConnectionManager_ForwardClientCertDetails
	certDetails         *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails
	via                 string
}

type hostRules struct {
	stripTrailingDot  bool
	stripAnyPort      bool
	stripMatchingPort bool
	acceptHTTP10      bool
	defaultHostHTTP10 string
}

type serverHeader struct {
	name      string
	transform hcmv3.HttpConnectionManager_ServerHeaderTransformation
	// value is []string{name}, shared by every response that gets the
	// header (capacity 1: an Add copies it instead of appending in place).
	value []string
}

// newServerHeader is server_name (DefaultServerName when empty) and its
// transformation.
func newServerHeader(name string, transform hcmv3.HttpConnectionManager_ServerHeaderTransformation) serverHeader {
	if name == "" {
		name = DefaultServerName
	}
	return serverHeader{name: name, transform: transform, value: []string{name}}
}

// values is the header's shared value slice.
func (s serverHeader) values() []string { return s.value[:1:1] }

// Manager is a compiled HTTP connection manager: immutable settings, the
// filter chain and the net/http server that parses connections for it.
// It implements listener.ConnHandler. It is safe for concurrent use.
type Manager struct {
	cfg         settings
	xfcc        atomic.Pointer[xfccEntry] // headers.go: clientCertEntryCached
	routes      *RouteSlot
	chain       filter.Handler
	closers     []io.Closer
	srv         atomic.Pointer[nethttp.Server] // swapped by Drain
	h1          *h1Server
	log         *slog.Logger
	observer    Observer
	stats       StatsSink // nil: limits are not counted
	random      func() uint64
	bufferLimit int
	tlsConns    sync.Map // *tls.Conn → *connState, for HTTP/2 over TLS
	// serverHook is m.serverHeader, made once (a method value per
	// request would be an allocation).
	serverHook func(int, nethttp.Header)
	// exchanges are the requests' exchanges that ended cleanly, for
	// the next requests (handler.go: recycle).
	exchanges sync.Pool

	closeOnce sync.Once
}

// Compile validates an HttpConnectionManager and builds its Manager. It
// does no I/O and starts nothing. Errors are *Error and name the field.
//
// Rejected (they would change traffic and are not implemented): HTTP/3,
// scoped routes, filters with config_discovery, unknown filters that are
// not is_optional, a chain not ending with exactly one terminal filter,
// CONNECT and h2c upgrade configs and upgrade filter chains,
// path_normalization_options, early header mutations. Ignored (telemetry
// and tuning handled elsewhere or not yet): local_reply_config,
// request_id_extension, max_connection_duration,
// max_stream_duration, max_requests_per_connection, drain and delayed
// close timeouts, internal_address_config. access_log and tracing are
// built from the registry (see buildTelemetry).
func Compile(h *hcmv3.HttpConnectionManager, deps Deps) (*Manager, error) {
	if h == nil {
		return nil, &Error{Err: errors.New("nil configuration")}
	}
	prefix := h.GetStatPrefix()
	fail := func(field string, err error) (*Manager, error) {
		return nil, &Error{StatPrefix: prefix, Field: field, Err: err}
	}
	if err := pgv.ValidateAll(h); err != nil {
		return fail("", err)
	}
	if deps.Upstream == nil {
		return fail("", errors.New("no Upstream"))
	}
	cfg, field, err := compileSettings(h)
	if err != nil {
		return fail(field, err)
	}
	cfg.localIdentity = deps.LocalIdentity
	m := &Manager{
		cfg:         cfg,
		log:         deps.Logger,
		observer:    deps.Observer,
		stats:       deps.Stats,
		random:      deps.Random,
		bufferLimit: deps.BufferLimit,
	}
	m.serverHook = m.serverHeader
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With("stat_prefix", prefix)
	if m.random == nil {
		m.random = rand.Uint64
	}
	if m.bufferLimit <= 0 {
		m.bufferLimit = DefaultBufferLimit
	}

	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if deps.Routes == nil {
			return fail("rds", errors.New("no RouteProvider for RDS"))
		}
		m.routes = deps.Routes.RouteSlot(rs.Rds.GetRouteConfigName())
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := route.Compile(rs.RouteConfig)
		if err != nil {
			return fail("route_config", err)
		}
		m.routes = &RouteSlot{}
		m.routes.Store(t)
	case *hcmv3.HttpConnectionManager_ScopedRoutes:
		return fail("scoped_routes", errors.New("scoped routes are not supported"))
	default:
		return fail("route_specifier", errors.New("neither rds nor route_config is set"))
	}

	reg := filter.Registry{
		fault.TypeURL:      fault.Factory{},
		cors.TypeURL:       cors.Factory{},
		rbacfilter.TypeURL: rbacfilter.Factory{},
		extauthz.TypeURL:   extauthz.Factory{Upstream: deps.Upstream, Logger: m.log},
		jwtfilter.TypeURL:  jwtfilter.Factory{},
		router.TypeURL:     router.Factory{Upstream: deps.Upstream, Logger: m.log, MaxMirrors: deps.MaxMirrors},
	}
	for k, f := range deps.Filters {
		reg[k] = f
	}
	if err := m.buildChain(h.GetHttpFilters(), reg); err != nil {
		m.Close()
		return nil, &Error{StatPrefix: prefix, Field: "http_filters", Err: err}
	}
	if field, err := m.buildTelemetry(h, reg); err != nil {
		m.Close()
		return nil, &Error{StatPrefix: prefix, Field: field, Err: err}
	}
	m.srv.Store(m.newServer())
	m.h1 = m.newH1Server()
	return m, nil
}

// Close releases the filters' resources (the router's mirrored requests).
// Connections being served are not affected; the listener owns them.
func (m *Manager) Close() error {
	var errs []error
	m.closeOnce.Do(func() {
		for _, c := range m.closers {
			errs = append(errs, c.Close())
		}
	})
	return errors.Join(errs...)
}

// chainEntry is one filter of the chain as configured.
type chainEntry struct {
	name     string
	disabled bool // disabled by default; a route's config enables it
	filter   filter.Filter
}

// buildChain builds every filter (Provision and Validate) and wraps them
// from the router back to the first, each behind the per-route switch.
func (m *Manager) buildChain(hfs []*hcmv3.HttpFilter, reg filter.Registry) error {
	var entries []chainEntry
	for i, hf := range hfs {
		where := fmt.Sprintf("[%d] (%s)", i, hf.GetName())
		if hf.GetConfigDiscovery() != nil {
			return fmt.Errorf("%s: config_discovery is not supported", where)
		}
		tc := hf.GetTypedConfig()
		if tc == nil {
			if hf.GetIsOptional() {
				continue
			}
			return fmt.Errorf("%s: no typed_config", where)
		}
		fac, ok := reg[tc.GetTypeUrl()]
		if !ok {
			if hf.GetIsOptional() {
				m.log.Info("skipping optional HTTP filter of unknown type", "filter", hf.GetName(), "type", tc.GetTypeUrl())
				continue
			}
			return fmt.Errorf("%s: unknown filter type %q", where, tc.GetTypeUrl())
		}
		f, err := fac.Build(hf.GetName(), tc)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if c, ok := f.(io.Closer); ok {
			m.closers = append(m.closers, c)
		}
		entries = append(entries, chainEntry{name: hf.GetName(), disabled: hf.GetDisabled(), filter: f})
	}
	if len(entries) == 0 {
		return errors.New("no HTTP filters: the last one must be the router")
	}
	for i, e := range entries {
		t, ok := e.filter.(filter.Terminal)
		terminal := ok && t.Terminal()
		if last := i == len(entries)-1; terminal != last {
			if last {
				return fmt.Errorf("the last filter %q is not a terminal filter", e.name)
			}
			return fmt.Errorf("terminal filter %q must be the last one", e.name)
		}
	}
	var h filter.Handler
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		wrapped := e.filter.Wrap(h)
		if i == len(entries)-1 {
			h = wrapped
			continue
		}
		h = &switchable{name: e.name, disabled: e.disabled, on: wrapped, off: h}
	}
	m.chain = h
	return nil
}

// TracingTypeURL is the registry key of the tracer's factory: it builds a
// filter from the connection manager's tracing settings
// (HttpConnectionManager.Tracing packed in an Any).
const TracingTypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing"

// buildTelemetry builds the access loggers and the tracer from the
// registry, by typed_config type URL, as it builds filters: each access_log
// entry's factory must build an Observer (it gets every record after
// Deps.Observer); the tracer's factory (TracingTypeURL, used when tracing
// names a provider) builds a filter placed first in the chain, and an
// Observer if it ends spans there. An access logger or tracer the registry
// does not know is an error, as in Envoy; so are access log filters.
// Last, the chain is wrapped so that every record carries the response
// headers and gRPC status (recordResponse). It returns the offending
// field with an error.
func (m *Manager) buildTelemetry(h *hcmv3.HttpConnectionManager, reg filter.Registry) (string, error) {
	var obs observers
	if m.observer != nil {
		obs = append(obs, m.observer)
	}
	for i, al := range h.GetAccessLog() {
		field := fmt.Sprintf("access_log[%d] (%s)", i, al.GetName())
		if al.GetFilter() != nil {
			return field + ".filter", errors.New("access log filters are not supported")
		}
		tc := al.GetTypedConfig()
		fac, ok := reg[tc.GetTypeUrl()]
		if tc == nil || !ok {
			return field, fmt.Errorf("unsupported access logger type %q", tc.GetTypeUrl())
		}
		f, err := fac.Build(al.GetName(), tc)
		if err != nil {
			return field, err
		}
		o, ok := f.(Observer)
		if !ok {
			return field, fmt.Errorf("type %q does not build an access logger", tc.GetTypeUrl())
		}
		obs = append(obs, o)
	}
	if tr := h.GetTracing(); tr.GetProvider() != nil {
		fac, ok := reg[TracingTypeURL]
		if !ok {
			return "tracing", errors.New("this proxy has no tracer")
		}
		tc, err := anypb.New(tr)
		if err != nil {
			return "tracing", err
		}
		f, err := fac.Build(tr.GetProvider().GetName(), tc)
		if err != nil {
			return "tracing", err
		}
		m.chain = f.Wrap(m.chain)
		if o, ok := f.(Observer); ok {
			obs = append(obs, o)
		}
	}
	m.chain = recordResponse{next: m.chain}
	if len(obs) > 1 {
		m.observer = obs
	}
	return "", nil
}

// observers hands each record to several observers, in order.
type observers []Observer

func (o observers) Observe(r *filter.Record) {
	for _, x := range o {
		x.Observe(r)
	}
}

// recordResponse is the chain's outermost handler: once the chain is done
// (also when it resets the stream), it leaves in the record what the
// observers read from the response: its headers (trailers under
// http.TrailerPrefix), the gRPC status, and the connection's server name.
type recordResponse struct{ next filter.Handler }

func (h recordResponse) ServeStream(s *filter.Stream) {
	defer recordResponseOf(s)
	h.next.ServeStream(s)
}

func recordResponseOf(s *filter.Stream) {
	rec := &s.Record
	if s.Conn != nil {
		rec.ServerName = s.Conn.SNI
		rec.MutualTLS, rec.PeerIdentity = s.Conn.MutualTLS, s.Conn.PeerIdentity
	}
	if !s.HeadersSent() || s.Hijacked() {
		return
	}
	hdr := s.Writer().Header()
	rec.ResponseHeader = hdr
	if !s.GRPC {
		return
	}
	v := hdr.Get("Grpc-Status")
	if v == "" {
		v = hdr.Get(nethttp.TrailerPrefix + "Grpc-Status")
	}
	if c, err := strconv.Atoi(v); err == nil {
		rec.GRPCStatus, rec.GRPCStatusSet = c, true
	}
}

// switchable runs a filter unless the route disables it
// (typed_per_filter_config FilterConfig.disabled), or, for a filter
// disabled in the chain, unless the route configures it.
type switchable struct {
	name     string
	disabled bool
	on, off  filter.Handler
}

func (f *switchable) ServeStream(s *filter.Stream) {
	if s.Route != nil {
		if c, ok := s.Route.Filter(f.name, s.Weighted); ok {
			if c.Disabled {
				f.off.ServeStream(s)
			} else {
				f.on.ServeStream(s)
			}
			return
		}
	}
	if f.disabled {
		f.off.ServeStream(s)
		return
	}
	f.on.ServeStream(s)
}

// compileSettings reads every setting, defaults applied. It returns the
// offending field's name with an error.
func compileSettings(h *hcmv3.HttpConnectionManager) (settings, string, error) {
	cfg := settings{statPrefix: h.GetStatPrefix(), codec: h.GetCodecType()}
	switch cfg.codec {
	case hcmv3.HttpConnectionManager_AUTO, hcmv3.HttpConnectionManager_HTTP1, hcmv3.HttpConnectionManager_HTTP2:
	default:
		return cfg, "codec_type", fmt.Errorf("codec %s is not supported", cfg.codec)
	}
	if h.GetPathNormalizationOptions() != nil {
		return cfg, "path_normalization_options", errors.New("not supported")
	}
	if len(h.GetEarlyHeaderMutationExtensions()) > 0 {
		return cfg, "early_header_mutation_extensions", errors.New("not supported")
	}
	cfg.norm = normalizer{
		normalize:      h.GetNormalizePath().GetValue(),
		mergeSlashes:   h.GetMergeSlashes(),
		escapedSlashes: h.GetPathWithEscapedSlashesAction(),
	}

	common := h.GetCommonHttpProtocolOptions()
	cfg.limits = limits{
		maxHeadersCount: DefaultMaxHeadersCount,
		maxHeaderBytes:  DefaultMaxRequestHeadersKB << 10,
		underscores:     common.GetHeadersWithUnderscoresAction(),
	}
	if v := common.GetMaxHeadersCount(); v != nil {
		cfg.limits.maxHeadersCount = int(v.GetValue())
	}
	if v := h.GetMaxRequestHeadersKb(); v != nil {
		cfg.limits.maxHeaderBytes = int(v.GetValue()) << 10
	}

	cfg.timeouts = timeouts{
		streamIdle:     DefaultStreamIdleTimeout,
		requestHeaders: DefaultRequestHeadersTimeout,
		idle:           DefaultIdleTimeout,
		request:        h.GetRequestTimeout().AsDuration(),
	}
	if d := h.GetStreamIdleTimeout(); d != nil {
		cfg.timeouts.streamIdle = d.AsDuration()
	}
	if d := h.GetRequestHeadersTimeout(); d != nil {
		cfg.timeouts.requestHeaders = d.AsDuration()
	}
	if d := common.GetIdleTimeout(); d != nil {
		cfg.timeouts.idle = d.AsDuration()
	}

	cfg.fwd = forwarding{
		useRemoteAddress:    h.GetUseRemoteAddress().GetValue(),
		xffTrustedHops:      int(h.GetXffNumTrustedHops()),
		skipXFFAppend:       h.GetSkipXffAppend(),
		generateRequestID:   h.GetGenerateRequestId() == nil || h.GetGenerateRequestId().GetValue(),
		preserveExternalID:  h.GetPreserveExternalRequestId(),
		requestIDInResponse: h.GetAlwaysSetRequestIdInResponse(),
		clientCert:          h.GetForwardClientCertDetails(),
		certDetails:         h.GetSetCurrentClientCertDetails(),
		via:                 h.GetVia(),
	}
	cfg.hosts = hostRules{
		stripTrailingDot:  h.GetStripTrailingHostDot(),
		stripAnyPort:      h.GetStripAnyHostPort(),
		stripMatchingPort: h.GetStripMatchingHostPort(),
		acceptHTTP10:      h.GetHttpProtocolOptions().GetAcceptHttp_10(),
		defaultHostHTTP10: h.GetHttpProtocolOptions().GetDefaultHostForHttp_10(),
	}
	cfg.server = newServerHeader(h.GetServerName(), h.GetServerHeaderTransformation())

	cfg.upgrades = map[string]bool{}
	for i, u := range h.GetUpgradeConfigs() {
		field := fmt.Sprintf("upgrade_configs[%d]", i)
		t := strings.ToLower(u.GetUpgradeType())
		switch {
		case t == "connect", t == "connect-udp":
			return cfg, field, fmt.Errorf("%s upgrades are not supported", u.GetUpgradeType())
		case t == "h2c":
			return cfg, field, errors.New("h2c upgrades are refused (use HTTP/2 prior knowledge)")
		case len(u.GetFilters()) > 0:
			return cfg, field, errors.New("upgrade filter chains are not supported")
		}
		cfg.upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}

	o := h.GetHttp2ProtocolOptions()
	cfg.h2 = nethttp.HTTP2Config{MaxConcurrentStreams: DefaultMaxConcurrentStreams}
	if v := o.GetMaxConcurrentStreams(); v != nil {
		cfg.h2.MaxConcurrentStreams = int(min(v.GetValue(), 1<<20))
	}
	if v := o.GetInitialStreamWindowSize(); v != nil {
		cfg.h2.MaxReceiveBufferPerStream = int(v.GetValue())
	}
	if v := o.GetInitialConnectionWindowSize(); v != nil {
		cfg.h2.MaxReceiveBufferPerConnection = int(v.GetValue())
	}
	if ka := o.GetConnectionKeepalive(); ka != nil {
		cfg.h2.SendPingTimeout = ka.GetInterval().AsDuration()
		cfg.h2.PingTimeout = ka.GetTimeout().AsDuration()
	}
	cfg.h2lim = compileH2Limits(o, cfg.limits.maxHeaderBytes)
	return cfg, "", nil
}
