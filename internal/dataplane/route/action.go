package route

import (
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// DefaultTimeout is Envoy's route timeout when RouteAction.timeout is
// unset. An explicit 0 disables the timeout.
const DefaultTimeout = 15 * time.Second

// Action is what a matched route does: *Forward, *Redirect,
// *DirectResponse or NonForwarding.
type Action interface{ isAction() }

// NonForwarding is RouteAction non_forwarding_action: the route matches
// (filters see it) but nothing is forwarded.
type NonForwarding struct{}

func (NonForwarding) isAction()   {}
func (*Forward) isAction()        {}
func (*Redirect) isAction()       {}
func (*DirectResponse) isAction() {}

// Route is a compiled route: the match, the typed action and everything
// the HTTP engine and filters read once the route is chosen. Immutable.
type Route struct {
	Name        string
	Index       int // position in VirtualHost.routes
	VirtualHost *VirtualHost
	Action      Action
	Decorator   *Decorator
	StatPrefix  string
	// PerRequestBufferLimit is per_request_buffer_limit_bytes; see
	// BufferLimit for the virtual host's fallback.
	PerRequestBufferLimit OptionalUint32

	// istioConfig is metadata filter_metadata["istio"]["config"].
	istioConfig string

	match       matcher
	reqHeaders  []*HeaderOps // route, virtual host, configuration in apply order
	respHeaders []*HeaderOps
	filters     filterConfigs
	fault       *Fault
	cors        *CORS
}

// Decorator is Route.decorator.
type Decorator struct {
	Operation string
	Propagate bool // default true
}

// IstioConfig returns the Istio config path Istio stores in
// filter_metadata["istio"]["config"], or "".
func (r *Route) IstioConfig() string { return r.istioConfig }

// BufferLimit is the per_request_buffer_limit_bytes in force: the route's,
// else its virtual host's; ok is false when neither sets one.
func (r *Route) BufferLimit() (limit uint32, ok bool) {
	if l := r.PerRequestBufferLimit; l.Set {
		return l.V, true
	}
	if r.VirtualHost != nil {
		if l := r.VirtualHost.PerRequestBufferLimit; l.Set {
			return l.V, true
		}
	}
	return 0, false
}

// OptionalUint32 is a wrapped uint32 that may be unset.
type OptionalUint32 struct {
	V   uint32
	Set bool
}

// OptionalDuration is a duration that may be unset (Envoy then falls back
// to the connection manager's value or to no limit).
type OptionalDuration struct {
	D   time.Duration
	Set bool
}

func optDuration(d interface{ AsDuration() time.Duration }, set bool) OptionalDuration {
	if !set {
		return OptionalDuration{}
	}
	return OptionalDuration{D: d.AsDuration(), Set: true}
}

// Forward is RouteAction: send the request upstream.
type Forward struct {
	// Exactly one of Cluster, ClusterHeader and Weighted is set.
	Cluster       string
	ClusterHeader string
	Weighted      *WeightedClusters
	// ClusterNotFoundStatus answers when the cluster does not exist (503,
	// 404 or 500).
	ClusterNotFoundStatus int

	// PrefixRewrite, RegexRewrite: see Route.UpstreamPath.
	PrefixRewrite string
	// HostRewrite (host_rewrite_literal), HostRewriteHeader, HostRewritePathRegex
	// and AutoHostRewrite: see Route.UpstreamAuthority.
	HostRewrite          string
	HostRewriteHeader    string
	AutoHostRewrite      bool
	AppendXForwardedHost bool

	// Timeout is the whole-request timeout: DefaultTimeout when unset, 0
	// disables it.
	Timeout     time.Duration
	IdleTimeout OptionalDuration
	// MaxStreamDuration and the grpc-timeout header handling come from
	// max_stream_duration, else from the deprecated max_grpc_timeout and
	// grpc_timeout_offset. GRPCTimeoutHeaderMax: unset means the
	// grpc-timeout header is ignored; 0 means no cap.
	MaxStreamDuration       OptionalDuration
	GRPCTimeoutHeaderMax    OptionalDuration
	GRPCTimeoutHeaderOffset OptionalDuration

	// Retry is the route's policy, else the virtual host's; nil for none.
	Retry *RetryPolicy
	// Hash is nil without hash policies.
	Hash *HashPolicy
	// Mirrors: the route's, else the virtual host's, else the
	// configuration's (never merged).
	Mirrors  []Mirror
	Upgrades []Upgrade
	Priority corev3.RoutingPriority
	// MetadataMatch selects endpoint subsets (kept for the load balancer;
	// a copy, not part of the decoded message).
	MetadataMatch *corev3.Metadata

	regexRewrite  *regexRewrite
	hostPathRegex *regexRewrite
}

// Upgrade is one RouteAction.upgrade_configs entry.
type Upgrade struct {
	Type    string // lower case, e.g. "websocket", "connect"
	Enabled bool
}

// Mirror is a request_mirror_policies entry.
type Mirror struct {
	Cluster       string
	ClusterHeader string
	// Fraction is runtime_fraction's default (100 % when unset).
	Fraction     Fraction
	TraceSampled *bool
	// DisableShadowHostSuffixAppend keeps the authority without "-shadow".
	DisableShadowHostSuffixAppend bool
	HostRewrite                   string
}

// Sample reports whether to mirror for the random value r.
func (m *Mirror) Sample(r uint64) bool { return m.Fraction.Sample(r) }

// WeightedClusters is RouteAction.weighted_clusters.
type WeightedClusters struct {
	Clusters []*WeightedCluster
	// Total is the sum of the weights (total_weight is deprecated in Envoy
	// and ignored here, as by Envoy).
	Total uint64
	// HeaderName, when set, takes the random value from that header
	// (random_value_specifier.header_name).
	HeaderName string
	// UseHashPolicy takes the random value from the route's hash.
	UseHashPolicy bool
}

// WeightedCluster is one weighted cluster.
type WeightedCluster struct {
	Name          string
	ClusterHeader string
	Weight        uint32
	// RequestHeaders and ResponseHeaders are applied before the route's.
	RequestHeaders  *HeaderOps
	ResponseHeaders *HeaderOps
	HostRewrite     string
	MetadataMatch   *corev3.Metadata

	filters  filterConfigs
	fault    *Fault
	hasFault bool // the cluster configures the fault filter
	cors     *CORS
}

// Pick chooses a cluster as Envoy: r % Total walks the cumulative weights;
// a zero-weight cluster is never chosen.
func (w *WeightedClusters) Pick(r uint64) *WeightedCluster {
	sel := r % w.Total
	var end uint64
	for _, c := range w.Clusters {
		end += uint64(c.Weight)
		if sel < end {
			return c
		}
	}
	return w.Clusters[len(w.Clusters)-1]
}

// PickFor chooses for a request: the random value is the header_name
// header (one value, a decimal uint64) when configured and valid, else the
// route hash when use_hash_policy and a hash was produced, else
// req.Random.
func (w *WeightedClusters) PickFor(req *Request, hash *HashPolicy) *WeightedCluster {
	r := req.Random
	if w.HeaderName != "" {
		var one [1]string
		if vs := req.headerValues(w.HeaderName, &one); len(vs) == 1 {
			if n, err := strconv.ParseUint(vs[0], 10, 64); err == nil {
				return w.Pick(n)
			}
		}
	}
	if w.UseHashPolicy {
		if h, ok := hash.Hash(req); ok {
			r = h
		}
	}
	return w.Pick(r)
}

// ClusterFor returns the upstream cluster for req (and the weighted
// cluster entry when weighted). ok is false when a cluster header is
// absent: Envoy then answers ClusterNotFoundStatus.
func (f *Forward) ClusterFor(req *Request) (name string, wc *WeightedCluster, ok bool) {
	switch {
	case f.Weighted != nil:
		wc = f.Weighted.PickFor(req, f.Hash)
		if wc.ClusterHeader != "" {
			name, ok = req.Header(wc.ClusterHeader)
			return name, wc, ok && name != ""
		}
		return wc.Name, wc, true
	case f.ClusterHeader != "":
		name, ok = req.Header(f.ClusterHeader)
		return name, nil, ok && name != ""
	}
	return f.Cluster, nil, true
}

// UpstreamPath returns the :path to send upstream, as Envoy's
// currentUrlPathAfterRewrite: prefix_rewrite replaces the matched part
// (the prefix for prefix and path-separated routes, the whole path for
// exact and regex routes); regex_rewrite substitutes within the path
// without its query, which is kept. ok is false when nothing is rewritten.
func (r *Route) UpstreamPath(req *Request) (string, bool) {
	switch a := r.Action.(type) {
	case *Forward:
		return rewritePath(&r.match, req.Path, a.PrefixRewrite, a.regexRewrite)
	case *Redirect:
		return rewritePath(&r.match, req.Path, a.PrefixRewrite, a.regexRewrite)
	}
	return req.Path, false
}

func rewritePath(m *matcher, path, prefix string, rr *regexRewrite) (string, bool) {
	switch {
	case prefix != "":
		n := min(m.matchedLen(path), len(path))
		return prefix + path[n:], true
	case rr != nil:
		p := pathOnly(path)
		return rr.replace(p) + path[len(p):], true
	}
	return path, false
}

// UpstreamAuthority returns the :authority to send upstream: the route's
// host_rewrite_literal, else the host_rewrite_header's first non-empty
// value, else host_rewrite_path_regex applied to the path, else the
// weighted cluster's host_rewrite_literal. ok is false when the authority
// is unchanged (AutoHostRewrite is for the upstream to apply).
func (r *Route) UpstreamAuthority(req *Request, wc *WeightedCluster) (string, bool) {
	f, isForward := r.Action.(*Forward)
	if !isForward {
		return req.Authority, false
	}
	switch {
	case f.HostRewrite != "":
		return f.HostRewrite, true
	case f.HostRewriteHeader != "":
		if v, ok := req.regularHeaderFirst(f.HostRewriteHeader); ok && v != "" {
			return v, true
		}
	case f.hostPathRegex != nil:
		return f.hostPathRegex.replace(pathOnly(req.Path)), true
	}
	if wc != nil && wc.HostRewrite != "" {
		return wc.HostRewrite, true
	}
	return req.Authority, false
}

// Redirect is RedirectAction.
type Redirect struct {
	// Scheme is scheme_redirect, or "https" for https_redirect; "" keeps.
	Scheme string
	Host   string // "" keeps
	Port   uint32 // 0 keeps
	// Path replaces the path ("" keeps); a query in it replaces the
	// request's and survives StripQuery.
	Path          string
	PrefixRewrite string
	StripQuery    bool
	// Status is 301 (default), 302, 303, 307 or 308.
	Status int

	regexRewrite *regexRewrite
	ssl          bool // require_tls redirect: https://authority/path
}

// Location computes the Location header for req as Envoy's
// Http::Utility::newUri after rewritePathHeader.
func (r *Route) Location(req *Request) string {
	rd, ok := r.Action.(*Redirect)
	if !ok {
		return ""
	}
	if rd.ssl {
		return "https://" + req.Authority + req.Path
	}
	path, _ := r.UpstreamPath(req)
	scheme := rd.Scheme
	if scheme == "" {
		scheme = req.Scheme
	}
	port := ""
	if rd.Port != 0 {
		port = ":" + strconv.FormatUint(uint64(rd.Port), 10)
	}
	host := rd.Host
	if host == "" {
		host = redirectHost(req, scheme, port)
	}
	pathHasQuery := false
	if rd.Path != "" {
		pathHasQuery = strings.Contains(rd.Path, "?")
		if pathHasQuery {
			path = rd.Path
		} else if i := strings.IndexByte(req.Path, '?'); i >= 0 {
			path = rd.Path + req.Path[i:]
		} else {
			path = rd.Path
		}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if !pathHasQuery && rd.StripQuery {
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
	}
	return scheme + "://" + host + port + path
}

// redirectHost is Envoy's processRequestHost: the request authority, with
// its port dropped when the redirect sets a port, or when the scheme
// changes away from the request's (x-forwarded-proto) and the port was
// that scheme's default (":80" for http, ":443" for https).
func redirectHost(req *Request, scheme, newPort string) string {
	host := req.Authority
	if host == "" {
		return host
	}
	var end int
	if host[0] == '[' {
		end = strings.LastIndex(host, "]:")
		if end >= 0 {
			end++
		}
	} else {
		end = strings.LastIndexByte(host, ':')
	}
	if end < 0 {
		return host
	}
	reqPort := host[end:]
	proto := req.forwardedProto()
	remove := newPort != ""
	if scheme != proto {
		remove = remove || (proto == "https" && reqPort == ":443") || (proto == "http" && reqPort == ":80")
	}
	if remove {
		return host[:end]
	}
	return host
}

// DirectResponse is DirectResponseAction.
type DirectResponse struct {
	Status int
	Body   string
}

// Location is the Location header Envoy adds to a 3xx direct response:
// the request URL (scheme://authority/path).
func (d *DirectResponse) Location(req *Request) string {
	if d.Status < 300 || d.Status > 399 {
		return ""
	}
	return req.Scheme + "://" + req.Authority + req.Path
}

// FilterConfig is one typed_per_filter_config entry, unwrapped from
// envoy.config.route.v3.FilterConfig when so wrapped. Config is a copy,
// not part of the decoded message.
type FilterConfig struct {
	Config   *anypb.Any
	Optional bool
	// Disabled turns the filter off for the route.
	Disabled bool
}

// filterConfigs is one level's typed_per_filter_config.
type filterConfigs map[string]FilterConfig

// Filter returns the most specific typed_per_filter_config for the filter
// name: weighted cluster, route, virtual host, then route configuration
// (Envoy's mostSpecificPerFilterConfig).
func (r *Route) Filter(name string, wc *WeightedCluster) (FilterConfig, bool) {
	if wc != nil {
		if c, ok := wc.filters[name]; ok {
			return c, true
		}
	}
	if c, ok := r.filters[name]; ok {
		return c, true
	}
	if c, ok := r.VirtualHost.filters[name]; ok {
		return c, true
	}
	c, ok := r.VirtualHost.table.filters[name]
	return c, ok
}

// FilterDisabled reports whether the most specific config of the filter
// disables it for this route.
func (r *Route) FilterDisabled(name string, wc *WeightedCluster) bool {
	c, ok := r.Filter(name, wc)
	return ok && c.Disabled
}

// Fault returns the decoded envoy.filters.http.fault config in force: that
// of the most specific level configuring the filter, not merged; nil when
// none, or when that config disables the filter.
func (r *Route) Fault(wc *WeightedCluster) *Fault {
	if wc != nil && wc.hasFault {
		return wc.fault
	}
	return r.fault
}

// CORS returns the CORS policy in force, merged across levels as the CORS
// filter reads it; nil when none or when the filter is disabled here.
func (r *Route) CORS(wc *WeightedCluster) *CORS {
	if r.FilterDisabled(CORSFilter, wc) {
		return nil
	}
	if wc != nil && wc.cors != nil {
		return wc.cors
	}
	return r.cors
}

// FinalizeRequestHeaders applies the header mutations for a request
// forwarded on this route: the weighted cluster's first, then route,
// virtual host and route configuration (reversed under
// most_specific_header_mutations_wins), as Envoy.
func (r *Route) FinalizeRequestHeaders(h HeaderMutator, wc *WeightedCluster) {
	if wc != nil {
		wc.RequestHeaders.Apply(h)
	}
	for _, o := range r.reqHeaders {
		o.Apply(h)
	}
}

// FinalizeResponseHeaders applies the response header mutations in the
// same order as FinalizeRequestHeaders.
func (r *Route) FinalizeResponseHeaders(h HeaderMutator, wc *WeightedCluster) {
	if wc != nil {
		wc.ResponseHeaders.Apply(h)
	}
	for _, o := range r.respHeaders {
		o.Apply(h)
	}
}
