package route

import (
	"errors"
	"fmt"
	"math"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
)

// defaultMaxDirectResponseBody is Envoy's max_direct_response_body_size_bytes default.
const defaultMaxDirectResponseBody = 4096

// Type URLs the table decodes.
const (
	filterConfigType = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
	faultType        = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
	corsType         = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
)

// Error is a compile error. It names where the problem is so the xDS
// client can NACK precisely: the virtual host and route indexes (-1 when
// not applicable) and names, and the reason.
type Error struct {
	Config          string
	VirtualHost     int
	VirtualHostName string
	Route           int
	RouteName       string
	Err             error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "route configuration %q", e.Config)
	if e.VirtualHost >= 0 {
		fmt.Fprintf(&b, ": virtual host %d (%q)", e.VirtualHost, e.VirtualHostName)
	}
	if e.Route >= 0 {
		fmt.Fprintf(&b, ": route %d (%q)", e.Route, e.RouteName)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Compile validates rc (Envoy's proto constraints, then the semantic checks
// Envoy makes when it loads a route table) and compiles it into a Table.
// Any problem rejects the whole configuration with an *Error, as Envoy
// NACKs a RouteConfiguration.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	if rc == nil {
		return nil, &Error{VirtualHost: -1, Route: -1, Err: errors.New("nil route configuration")}
	}
	cerr := func(vh, r int, vhName, rName string, err error) error {
		return &Error{Config: rc.GetName(), VirtualHost: vh, VirtualHostName: vhName, Route: r, RouteName: rName, Err: err}
	}
	if err := validateShallow(rc, "virtual_hosts"); err != nil {
		return nil, cerr(-1, -1, "", "", err)
	}
	switch {
	case rc.GetVhds() != nil:
		return nil, cerr(-1, -1, "", "", errors.New("vhds is not supported"))
	case len(rc.GetClusterSpecifierPlugins()) > 0:
		return nil, cerr(-1, -1, "", "", errors.New("cluster_specifier_plugins are not supported"))
	case len(rc.GetRouteSpecifiers()) > 0:
		return nil, cerr(-1, -1, "", "", errors.New("route_specifiers are not supported"))
	}
	t := &Table{
		Name:                            str(rc.GetName()),
		MaxDirectResponseBodySize:       defaultMaxDirectResponseBody,
		InternalOnlyHeaders:             lowerAll(rc.GetInternalOnlyHeaders()),
		ignorePort:                      rc.GetIgnorePortInHostMatching(),
		vhostHeader:                     strings.ToLower(rc.GetVhostHeader()),
		exact:                           map[string]*VirtualHost{},
		suffix:                          map[string]*VirtualHost{},
		prefix:                          map[string]*VirtualHost{},
		mostSpecificHeaderMutationsWins: rc.GetMostSpecificHeaderMutationsWins(),
	}
	if m := rc.GetMaxDirectResponseBodySizeBytes(); m != nil {
		t.MaxDirectResponseBodySize = m.GetValue()
	}
	var err error
	if t.reqHeaders, err = compileHeaderOps(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove()); err != nil {
		return nil, cerr(-1, -1, "", "", fmt.Errorf("request_%w", err))
	}
	if t.respHeaders, err = compileHeaderOps(rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()); err != nil {
		return nil, cerr(-1, -1, "", "", fmt.Errorf("response_%w", err))
	}
	if t.mirrors, err = compileMirrors(rc.GetRequestMirrorPolicies()); err != nil {
		return nil, cerr(-1, -1, "", "", err)
	}
	rcLevel, err := compileFilterLevel(rc.GetTypedPerFilterConfig())
	if err != nil {
		return nil, cerr(-1, -1, "", "", err)
	}
	t.filters = rcLevel.configs
	for i, vc := range rc.GetVirtualHosts() {
		vh, ri, err := compileVirtualHost(t, rcLevel, vc, i)
		if err != nil {
			rName := ""
			if ri >= 0 {
				rName = vc.GetRoutes()[ri].GetName()
			}
			return nil, cerr(i, ri, vc.GetName(), rName, err)
		}
		if err := t.addDomains(vh); err != nil {
			return nil, cerr(i, -1, vc.GetName(), "", err)
		}
		t.VirtualHosts = append(t.VirtualHosts, vh)
	}
	t.sortLens()
	t.retries = nil
	return t, nil
}

// validateShallow runs the proto's validation rules (Envoy's PGV
// constraints) on m without the repeated field skip, whose elements are
// validated one by one so that errors carry their index.
func validateShallow(m proto.Message, skip protoreflect.Name) error {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Name() != skip {
			dst.Set(fd, v)
		}
		return true
	})
	if err := pgv.Validate(dst.Interface()); err != nil {
		return fmt.Errorf("invalid: %w", err)
	}
	return nil
}

func lowerAll(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

// filterLevel is one level's typed_per_filter_config, with the configs the
// table understands decoded.
type filterLevel struct {
	configs filterConfigs
	fault   *Fault
	cors    *corsLevel
}

func compileFilterLevel(m map[string]*anypb.Any) (*filterLevel, error) {
	out := &filterLevel{}
	if len(m) == 0 {
		return out, nil
	}
	out.configs = make(filterConfigs, len(m))
	for name, a := range m {
		fc := FilterConfig{Config: detachAny(a)}
		if a.GetTypeUrl() == filterConfigType {
			var w routev3.FilterConfig
			if err := a.UnmarshalTo(&w); err != nil {
				return nil, fmt.Errorf("typed_per_filter_config %q: %w", name, err)
			}
			fc = FilterConfig{Config: w.GetConfig(), Optional: w.GetIsOptional(), Disabled: w.GetDisabled()}
		}
		out.configs[str(name)] = fc
		if fc.Config == nil || fc.Disabled {
			continue
		}
		switch {
		case name == FaultFilter && fc.Config.GetTypeUrl() == faultType:
			var f faultv3.HTTPFault
			if err := unmarshalValid(fc.Config, &f); err != nil {
				return nil, fmt.Errorf("typed_per_filter_config %q: %w", name, err)
			}
			d, err := decodeFault(&f)
			if err != nil {
				return nil, fmt.Errorf("typed_per_filter_config %q: %w", name, err)
			}
			out.fault = d
		case name == CORSFilter && fc.Config.GetTypeUrl() == corsType:
			var c corsv3.CorsPolicy
			if err := unmarshalValid(fc.Config, &c); err != nil {
				return nil, fmt.Errorf("typed_per_filter_config %q: %w", name, err)
			}
			d, err := decodeCORS(&c)
			if err != nil {
				return nil, fmt.Errorf("typed_per_filter_config %q: %w", name, err)
			}
			out.cors = d
		}
	}
	return out, nil
}

func unmarshalValid(a *anypb.Any, m proto.Message) error {
	if err := a.UnmarshalTo(m); err != nil {
		return err
	}
	return pgv.Validate(m)
}

func compileMirrors(list []*routev3.RouteAction_RequestMirrorPolicy) ([]Mirror, error) {
	var out []Mirror
	for i, p := range list {
		m := Mirror{
			Cluster:                       str(p.GetCluster()),
			ClusterHeader:                 strings.ToLower(p.GetClusterHeader()),
			Fraction:                      always,
			DisableShadowHostSuffixAppend: p.GetDisableShadowHostSuffixAppend(),
			HostRewrite:                   str(p.GetHostRewriteLiteral()),
		}
		if (m.Cluster == "") == (m.ClusterHeader == "") {
			return nil, fmt.Errorf("request_mirror_policies[%d]: exactly one of cluster and cluster_header is required", i)
		}
		if rf := p.GetRuntimeFraction(); rf != nil {
			f, err := runtimeFraction(rf)
			if err != nil {
				return nil, fmt.Errorf("request_mirror_policies[%d].runtime_fraction: %w", i, err)
			}
			m.Fraction = f
		}
		if ts := p.GetTraceSampled(); ts != nil {
			v := ts.GetValue()
			m.TraceSampled = &v
		}
		out = append(out, m)
	}
	return out, nil
}

// compileVirtualHost compiles one virtual host; on error it also returns
// the index of the failing route (-1 for the virtual host itself).
func compileVirtualHost(t *Table, rcLevel *filterLevel, vc *routev3.VirtualHost, index int) (*VirtualHost, int, error) {
	vh := &VirtualHost{
		Name:                          str(vc.GetName()),
		Index:                         index,
		Domains:                       strs(vc.GetDomains()),
		IncludeRequestAttemptCount:    vc.GetIncludeRequestAttemptCount(),
		IncludeAttemptCountInResponse: vc.GetIncludeAttemptCountInResponse(),
		PerRequestBufferLimit:         optUint32(vc.GetPerRequestBufferLimitBytes()),
		table:                         t,
	}
	if err := validateShallow(vc, "routes"); err != nil {
		return nil, -1, err
	}
	switch {
	case vc.GetMatcher() != nil:
		return nil, -1, errors.New("matcher is not supported")
	case vc.GetRetryPolicyTypedConfig() != nil:
		return nil, -1, errors.New("retry_policy_typed_config is not supported")
	case len(vc.GetRouteSpecifiers()) > 0:
		return nil, -1, errors.New("route_specifiers are not supported")
	}
	switch vc.GetRequireTls() {
	case routev3.VirtualHost_NONE:
	case routev3.VirtualHost_EXTERNAL_ONLY:
		vh.RequireTLS = TLSExternalOnly
	case routev3.VirtualHost_ALL:
		vh.RequireTLS = TLSAll
	default:
		return nil, -1, fmt.Errorf("unknown require_tls %d", int32(vc.GetRequireTls()))
	}
	if vh.RequireTLS != TLSNone {
		vh.sslRedirect = &Route{Name: "ssl_redirect", Index: -1, VirtualHost: vh, Action: &Redirect{Scheme: "https", Status: 301, ssl: true}}
	}
	var err error
	if vh.retry, err = t.sharedRetry(vc.GetRetryPolicy()); err != nil {
		return nil, -1, fmt.Errorf("retry_policy: %w", err)
	}
	if vh.reqHeaders, err = compileHeaderOps(vc.GetRequestHeadersToAdd(), vc.GetRequestHeadersToRemove()); err != nil {
		return nil, -1, fmt.Errorf("request_%w", err)
	}
	if vh.respHeaders, err = compileHeaderOps(vc.GetResponseHeadersToAdd(), vc.GetResponseHeadersToRemove()); err != nil {
		return nil, -1, fmt.Errorf("response_%w", err)
	}
	if vh.mirrors, err = compileMirrors(vc.GetRequestMirrorPolicies()); err != nil {
		return nil, -1, err
	}
	vhLevel, err := compileFilterLevel(vc.GetTypedPerFilterConfig())
	if err != nil {
		return nil, -1, err
	}
	vh.filters = vhLevel.configs
	legacyVH, err := legacyCORS(vc.GetCors()) //nolint:staticcheck // deprecated field still honoured
	if err != nil {
		return nil, -1, fmt.Errorf("cors: %w", err)
	}
	levels := levels{rc: rcLevel, vh: vhLevel, legacyVH: legacyVH}
	for i, rt := range vc.GetRoutes() {
		r, err := compileRoute(vh, levels, rt, i)
		if err != nil {
			return nil, i, err
		}
		vh.Routes = append(vh.Routes, r)
	}
	return vh, -1, nil
}

// levels carries the outer levels' per-filter configs into a route.
type levels struct {
	rc, vh   *filterLevel
	legacyVH *corsLevel
}

func compileRoute(vh *VirtualHost, lv levels, rt *routev3.Route, index int) (*Route, error) {
	t := vh.table
	r := &Route{
		Name:                  str(rt.GetName()),
		Index:                 index,
		VirtualHost:           vh,
		StatPrefix:            str(rt.GetStatPrefix()),
		PerRequestBufferLimit: optUint32(rt.GetPerRequestBufferLimitBytes()),
		istioConfig:           istioConfig(rt.GetMetadata()),
	}
	if err := pgv.Validate(rt); err != nil {
		return nil, fmt.Errorf("invalid: %w", err)
	}
	if len(rt.GetRouteSpecifiers()) > 0 {
		return nil, errors.New("route_specifiers are not supported")
	}
	var err error
	if r.match, err = compileMatch(rt.GetMatch()); err != nil {
		return nil, err
	}
	if d := rt.GetDecorator(); d != nil {
		r.Decorator = &Decorator{Operation: str(d.GetOperation()), Propagate: d.GetPropagate() == nil || d.GetPropagate().GetValue()}
	}
	rtReq, err := compileHeaderOps(rt.GetRequestHeadersToAdd(), rt.GetRequestHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("request_%w", err)
	}
	rtResp, err := compileHeaderOps(rt.GetResponseHeadersToAdd(), rt.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("response_%w", err)
	}
	r.reqHeaders = headerPlan(t.mostSpecificHeaderMutationsWins, rtReq, vh.reqHeaders, t.reqHeaders)
	r.respHeaders = headerPlan(t.mostSpecificHeaderMutationsWins, rtResp, vh.respHeaders, t.respHeaders)
	rtLevel, err := compileFilterLevel(rt.GetTypedPerFilterConfig())
	if err != nil {
		return nil, err
	}
	r.filters = rtLevel.configs
	r.fault = mostSpecificFault(rtLevel, lv.vh, lv.rc)
	var legacyRoute *corsLevel
	switch a := rt.GetAction().(type) {
	case *routev3.Route_Route:
		f, err := compileForward(vh, a.Route, r.match.kind)
		if err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
		if legacyRoute, err = legacyCORS(a.Route.GetCors()); err != nil { //nolint:staticcheck // deprecated field still honoured
			return nil, fmt.Errorf("route.cors: %w", err)
		}
		r.Action = f
	case *routev3.Route_Redirect:
		rd, err := compileRedirect(a.Redirect, r.match.kind)
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		r.Action = rd
	case *routev3.Route_DirectResponse:
		d, err := compileDirect(a.DirectResponse, t.MaxDirectResponseBodySize)
		if err != nil {
			return nil, fmt.Errorf("direct_response: %w", err)
		}
		r.Action = d
	case *routev3.Route_NonForwardingAction:
		r.Action = NonForwarding{}
	case *routev3.Route_FilterAction:
		return nil, errors.New("filter_action is not supported")
	default:
		return nil, errors.New("route has no action")
	}
	typed := lv.rc.cors != nil || lv.vh.cors != nil || rtLevel.cors != nil
	if typed {
		r.cors = mergeCORS(rtLevel.cors, lv.vh.cors, lv.rc.cors)
	} else {
		r.cors = mergeCORS(legacyRoute, lv.legacyVH)
	}
	if f, ok := r.Action.(*Forward); ok && f.Weighted != nil {
		if err := resolveClusterFilters(f.Weighted, rt.GetRoute(), rtLevel, lv); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// resolveClusterFilters decodes each weighted cluster's per-filter configs
// and precomputes its fault (most specific) and CORS (merged).
func resolveClusterFilters(w *WeightedClusters, ra *routev3.RouteAction, rtLevel *filterLevel, lv levels) error {
	for i, c := range ra.GetWeightedClusters().GetClusters() {
		l, err := compileFilterLevel(c.GetTypedPerFilterConfig())
		if err != nil {
			return fmt.Errorf("route.weighted_clusters.clusters[%d] (%q): %w", i, c.GetName(), err)
		}
		wc := w.Clusters[i]
		wc.filters = l.configs
		if _, ok := l.configs[FaultFilter]; ok {
			wc.fault, wc.hasFault = l.fault, true
		}
		if l.cors != nil {
			wc.cors = mergeCORS(l.cors, rtLevel.cors, lv.vh.cors, lv.rc.cors)
		}
	}
	return nil
}

// mostSpecificFault is the decoded fault config of the most specific level
// that configures the fault filter (nil when that config is disabled or
// not an HTTPFault), as Envoy's mostSpecificPerFilterConfig.
func mostSpecificFault(levels ...*filterLevel) *Fault {
	for _, l := range levels {
		if _, ok := l.configs[FaultFilter]; ok {
			return l.fault
		}
	}
	return nil
}

// headerPlan orders the levels' mutations: route, virtual host,
// configuration; reversed when the most specific mutation must win.
func headerPlan(mostSpecificWins bool, route, vhost, config *HeaderOps) []*HeaderOps {
	order := []*HeaderOps{route, vhost, config}
	if mostSpecificWins {
		order = []*HeaderOps{config, vhost, route}
	}
	var out []*HeaderOps
	for _, o := range order {
		if !o.empty() {
			out = append(out, o)
		}
	}
	return out
}

func compileForward(vh *VirtualHost, ra *routev3.RouteAction, kind pathKind) (*Forward, error) {
	f := &Forward{
		PrefixRewrite:        str(ra.GetPrefixRewrite()),
		AppendXForwardedHost: ra.GetAppendXForwardedHost(),
		Timeout:              DefaultTimeout,
		Priority:             ra.GetPriority(),
		MetadataMatch:        detachMetadata(ra.GetMetadataMatch()),
	}
	switch c := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		f.Cluster = str(c.Cluster)
	case *routev3.RouteAction_ClusterHeader:
		f.ClusterHeader = strings.ToLower(c.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		w, err := compileWeighted(c.WeightedClusters)
		if err != nil {
			return nil, fmt.Errorf("weighted_clusters: %w", err)
		}
		f.Weighted = w
	case *routev3.RouteAction_ClusterSpecifierPlugin, *routev3.RouteAction_InlineClusterSpecifierPlugin:
		return nil, errors.New("cluster specifier plugins are not supported")
	default:
		return nil, errors.New("no cluster specifier")
	}
	switch ra.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_SERVICE_UNAVAILABLE:
		f.ClusterNotFoundStatus = 503
	case routev3.RouteAction_NOT_FOUND:
		f.ClusterNotFoundStatus = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		f.ClusterNotFoundStatus = 500
	default:
		return nil, fmt.Errorf("unknown cluster_not_found_response_code %d", int32(ra.GetClusterNotFoundResponseCode()))
	}
	switch {
	case ra.GetPathRewritePolicy() != nil:
		return nil, fmt.Errorf("path_rewrite_policy %q is not supported", ra.GetPathRewritePolicy().GetName())
	case ra.GetPathRewrite() != "":
		return nil, errors.New("path_rewrite is not supported")
	}
	if rr := ra.GetRegexRewrite(); rr != nil {
		if f.PrefixRewrite != "" {
			return nil, errors.New("specify only one of prefix_rewrite and regex_rewrite")
		}
		r, err := compileRegexRewrite(rr)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
		f.regexRewrite = r
	}
	if f.PrefixRewrite != "" && kind == pathConnect {
		return nil, errors.New("prefix_rewrite cannot be used with connect_matcher")
	}
	switch h := ra.GetHostRewriteSpecifier().(type) {
	case nil:
	case *routev3.RouteAction_HostRewriteLiteral:
		f.HostRewrite = str(h.HostRewriteLiteral)
	case *routev3.RouteAction_AutoHostRewrite:
		f.AutoHostRewrite = h.AutoHostRewrite.GetValue()
	case *routev3.RouteAction_HostRewriteHeader:
		f.HostRewriteHeader = strings.ToLower(h.HostRewriteHeader)
	case *routev3.RouteAction_HostRewritePathRegex:
		r, err := compileRegexRewrite(h.HostRewritePathRegex)
		if err != nil {
			return nil, fmt.Errorf("host_rewrite_path_regex: %w", err)
		}
		f.hostPathRegex = r
	default:
		return nil, fmt.Errorf("host rewrite %T is not supported", h)
	}
	if ra.GetTimeout() != nil {
		f.Timeout = ra.GetTimeout().AsDuration()
	}
	f.IdleTimeout = optDuration(ra.GetIdleTimeout(), ra.GetIdleTimeout() != nil)
	if msd := ra.GetMaxStreamDuration(); msd != nil {
		f.MaxStreamDuration = optDuration(msd.GetMaxStreamDuration(), msd.GetMaxStreamDuration() != nil)
		f.GRPCTimeoutHeaderMax = optDuration(msd.GetGrpcTimeoutHeaderMax(), msd.GetGrpcTimeoutHeaderMax() != nil)
		f.GRPCTimeoutHeaderOffset = optDuration(msd.GetGrpcTimeoutHeaderOffset(), msd.GetGrpcTimeoutHeaderOffset() != nil)
	} else {
		//nolint:staticcheck // deprecated fields still honoured when max_stream_duration is absent
		f.GRPCTimeoutHeaderMax = optDuration(ra.GetMaxGrpcTimeout(), ra.GetMaxGrpcTimeout() != nil)
		//nolint:staticcheck // deprecated
		f.GRPCTimeoutHeaderOffset = optDuration(ra.GetGrpcTimeoutOffset(), ra.GetGrpcTimeoutOffset() != nil)
	}
	if ra.GetRetryPolicyTypedConfig() != nil {
		return nil, errors.New("retry_policy_typed_config is not supported")
	}
	var err error
	if ra.GetRetryPolicy() != nil {
		if f.Retry, err = vh.table.sharedRetry(ra.GetRetryPolicy()); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	} else {
		f.Retry = vh.retry
	}
	if f.Hash, err = compileHashPolicy(ra.GetHashPolicy()); err != nil {
		return nil, err
	}
	if f.Mirrors, err = compileMirrors(ra.GetRequestMirrorPolicies()); err != nil {
		return nil, err
	}
	if len(f.Mirrors) == 0 {
		f.Mirrors = vh.mirrors
	}
	if len(f.Mirrors) == 0 {
		f.Mirrors = vh.table.mirrors
	}
	for _, u := range ra.GetUpgradeConfigs() {
		f.Upgrades = append(f.Upgrades, Upgrade{Type: strings.ToLower(u.GetUpgradeType()), Enabled: u.GetEnabled() == nil || u.GetEnabled().GetValue()})
	}
	return f, nil
}

func compileWeighted(w *routev3.WeightedCluster) (*WeightedClusters, error) {
	out := &WeightedClusters{}
	switch s := w.GetRandomValueSpecifier().(type) {
	case *routev3.WeightedCluster_HeaderName:
		out.HeaderName = strings.ToLower(s.HeaderName)
	case *routev3.WeightedCluster_UseHashPolicy:
		out.UseHashPolicy = s.UseHashPolicy.GetValue()
	}
	for i, c := range w.GetClusters() {
		wc := &WeightedCluster{
			Name:          str(c.GetName()),
			ClusterHeader: strings.ToLower(c.GetClusterHeader()),
			Weight:        c.GetWeight().GetValue(),
			HostRewrite:   str(c.GetHostRewriteLiteral()),
			MetadataMatch: detachMetadata(c.GetMetadataMatch()),
		}
		if (wc.Name == "") == (wc.ClusterHeader == "") {
			return nil, fmt.Errorf("clusters[%d]: exactly one of name and cluster_header is required", i)
		}
		var err error
		if wc.RequestHeaders, err = compileHeaderOps(c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove()); err != nil {
			return nil, fmt.Errorf("clusters[%d] (%q): request_%w", i, wc.Name, err)
		}
		if wc.ResponseHeaders, err = compileHeaderOps(c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove()); err != nil {
			return nil, fmt.Errorf("clusters[%d] (%q): response_%w", i, wc.Name, err)
		}
		out.Total += uint64(wc.Weight)
		out.Clusters = append(out.Clusters, wc)
	}
	if len(out.Clusters) == 0 {
		return nil, errors.New("no clusters")
	}
	if out.Total == 0 {
		return nil, errors.New("sum of weights must be greater than 0")
	}
	if out.Total > math.MaxUint32 {
		return nil, fmt.Errorf("sum of weights %d exceeds %d", out.Total, uint64(math.MaxUint32))
	}
	return out, nil
}

func compileRedirect(r *routev3.RedirectAction, kind pathKind) (*Redirect, error) {
	out := &Redirect{Host: r.GetHostRedirect(), Port: r.GetPortRedirect(), StripQuery: r.GetStripQuery()}
	switch s := r.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			out.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		out.Scheme = strings.ToLower(s.SchemeRedirect)
	}
	switch p := r.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		out.Path = p.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		if kind == pathConnect {
			return nil, errors.New("prefix_rewrite cannot be used with connect_matcher")
		}
		out.PrefixRewrite = p.PrefixRewrite
	case *routev3.RedirectAction_RegexRewrite:
		rr, err := compileRegexRewrite(p.RegexRewrite)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
		out.regexRewrite = rr
	case *routev3.RedirectAction_PathRewrite:
		return nil, errors.New("path_rewrite is not supported")
	}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		out.Status = 301
	case routev3.RedirectAction_FOUND:
		out.Status = 302
	case routev3.RedirectAction_SEE_OTHER:
		out.Status = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		out.Status = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		out.Status = 308
	default:
		return nil, fmt.Errorf("unknown response_code %d", int32(r.GetResponseCode()))
	}
	return out, nil
}

func compileDirect(d *routev3.DirectResponseAction, maxBody uint32) (*DirectResponse, error) {
	out := &DirectResponse{Status: int(d.GetStatus())}
	if out.Status < 200 || out.Status > 599 {
		return nil, fmt.Errorf("status %d is outside [200, 600)", out.Status)
	}
	if b := d.GetBody(); b != nil {
		switch s := b.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			out.Body = s.InlineString
		case *corev3.DataSource_InlineBytes:
			out.Body = string(s.InlineBytes)
		case nil:
		default:
			return nil, fmt.Errorf("body %T is not supported (only inline bodies)", s)
		}
	}
	if uint64(len(out.Body)) > uint64(maxBody) {
		return nil, fmt.Errorf("response body size is %d bytes; maximum is %d", len(out.Body), maxBody)
	}
	return out, nil
}
