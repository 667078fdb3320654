package route

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// Per-route filter configuration keys (the HTTP filters' names).
const (
	faultFilter = "envoy.filters.http.fault"
	corsFilter  = "envoy.filters.http.cors"
)

// unknownService is the cluster Istio names for a destination without a host.
const unknownService = "UnknownService"

// HTTPRoutes translates the HTTP routes of one VirtualService (delegates
// expanded) into Envoy routes for an outbound port, in VirtualService order:
// one Envoy route per match, the same action on each, stopping after the
// first route that matches everything. Matches that do not apply to the
// proxy (port, sourceLabels, sourceNamespace, gateways) are left out, so an
// empty result means the VirtualService does not apply on this port. The
// error lists the problems that removed routes; the routes returned are
// usable regardless.
func HTTPRoutes(sc *model.Scope, vs config.Config, port uint32) ([]*routev3.Route, error) {
	return httpRoutes(sc, newHashRules(sc), vs, port)
}

func httpRoutes(sc *model.Scope, hash *hashRules, vs config.Config, port uint32) ([]*routev3.Route, error) {
	if _, ok := vs.Spec.(*networking.VirtualService); !ok {
		return nil, fmt.Errorf("%s: spec is %T, not a VirtualService", vs.Key(), vs.Spec)
	}
	b := &routeBuilder{sc: sc, hash: hash, vs: vs, port: port}
	sources, errs := expandDelegates(sc, vs)
	out := make([]*routev3.Route, 0, len(sources))
	for _, src := range sources {
		catchAll := false
		if len(src.route.GetMatch()) == 0 {
			r, err := b.route(src, nil)
			if err != nil {
				errs = append(errs, err)
			}
			if r != nil {
				out = append(out, r)
			}
			catchAll = true
		}
		for _, m := range src.route.GetMatch() {
			r, err := b.route(src, m)
			if err != nil {
				errs = append(errs, err)
			}
			if r != nil {
				out = append(out, r)
				if isCatchAll(r) { // later routes could never be reached
					catchAll = true
					break
				}
			}
		}
		if catchAll {
			break
		}
	}
	return out, errors.Join(errs...)
}

// routeBuilder translates the routes of one VirtualService for one port.
type routeBuilder struct {
	sc   *model.Scope
	hash *hashRules
	vs   config.Config
	port uint32
}

// route translates one HTTPRoute under one of its matches (nil: none). It
// returns no route when the match does not apply to this proxy and port. An
// error comes with no route when the problem removed it, and with the route
// when only a part (a fault Envoy cannot express) was left out.
func (b *routeBuilder) route(src httpSource, m *networking.HTTPMatchRequest) (*routev3.Route, error) {
	in := src.route
	if m.GetPort() != 0 && m.GetPort() != b.port {
		return nil, nil
	}
	if !sourceMatches(m, b.sc.Proxy()) {
		return nil, nil
	}
	name := in.GetName()
	if m.GetName() != "" {
		name += "." + m.GetName() // Istio's form, also when the route has no name
	}
	out := &routev3.Route{
		Name:       name,
		Match:      translateMatch(b.vs, m),
		Metadata:   configMetadata(b.vs),
		StatPrefix: m.GetStatPrefix(),
	}
	ops := translateHeaders(in.GetHeaders())
	out.RequestHeadersToAdd = ops.requestAdd
	out.RequestHeadersToRemove = ops.requestRemove
	out.ResponseHeadersToAdd = ops.responseAdd
	out.ResponseHeadersToRemove = ops.responseRemove

	var err error
	switch {
	case in.GetRedirect() != nil:
		err = b.redirect(out, in.GetRedirect())
	case in.GetDirectResponse() != nil:
		directResponse(out, in.GetDirectResponse())
	default:
		err = b.forward(out, src, ops.authority)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: http route %q: %w", vsName(b.vs), routeLabel(in, src.index), err)
	}
	out.Decorator = &routev3.Decorator{Operation: routeOperation(out, b.vs.Name, b.port)}

	if in.GetFault() != nil || in.GetCorsPolicy() != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	f, err := translateFault(in.GetFault())
	if f != nil {
		out.TypedPerFilterConfig[faultFilter] = f
	}
	if err != nil {
		err = fmt.Errorf("%s: http route %q: fault: %w", vsName(b.vs), routeLabel(in, src.index), err)
	}
	if c := translateCORS(in.GetCorsPolicy()); c != nil {
		out.TypedPerFilterConfig[corsFilter] = c
	}
	return out, err
}

// forward fills a route that sends traffic to destinations.
func (b *routeBuilder) forward(out *routev3.Route, src httpSource, authority string) error {
	in := src.route
	action := &routev3.RouteAction{}
	setTimeout(action, in.GetTimeout(), b.sc.Proxy().IsGRPC())
	gateway := gatewaySemantics(b.vs)
	if gateway {
		action.ClusterNotFoundResponseCode = routev3.RouteAction_INTERNAL_SERVER_ERROR
	}
	out.Action = &routev3.Route_Route{Route: action}

	if rw := in.GetRewrite(); rw != nil {
		if re := rw.GetUriRegexRewrite(); re != nil {
			action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: re.GetMatch()},
				Substitution: re.GetRewrite(),
			}
		} else if uri := rw.GetUri(); uri != "" {
			if gateway && uri == "/" {
				// Gateway API: drop the matched prefix, keep a leading "/".
				action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
					Pattern:      &matcherv3.RegexMatcher{Regex: `^` + regexp.QuoteMeta(out.GetMatch().GetPathSeparatedPrefix()) + `(/?)(.*)`},
					Substitution: `/\2`,
				}
			} else {
				action.PrefixRewrite = uri
			}
		}
		if rw.GetAuthority() != "" {
			authority = rw.GetAuthority()
		}
	}
	if authority != "" {
		action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: authority}
	}

	if in.GetMirror() != nil {
		if p := mirrorPercent(in); p != nil {
			action.RequestMirrorPolicies = append(action.RequestMirrorPolicies,
				mirrorPolicy(destinationCluster(b.sc, in.GetMirror(), src.ns, b.port), p))
		}
	}
	for _, mp := range in.GetMirrors() {
		if p := mirrorPolicyPercent(mp); p != nil && mp.GetDestination() != nil {
			action.RequestMirrorPolicies = append(action.RequestMirrorPolicies,
				mirrorPolicy(destinationCluster(b.sc, mp.GetDestination(), src.ns, b.port), p))
		}
	}

	policy := in.GetRetries()
	if policy == nil {
		policy = b.sc.Snapshot().Mesh.GetDefaultHttpRetryPolicy()
	}
	consistentHash := false
	switch dests := in.GetRoute(); len(dests) {
	case 0:
		return errors.New("no destination, redirect or direct response")
	case 1:
		dst := dests[0]
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: destinationCluster(b.sc, dst.GetDestination(), src.ns, b.port)}
		if dst.GetHeaders() != nil {
			ops := translateHeaders(dst.GetHeaders())
			out.RequestHeadersToAdd = append(out.RequestHeadersToAdd, ops.requestAdd...)
			out.RequestHeadersToRemove = append(out.RequestHeadersToRemove, ops.requestRemove...)
			out.ResponseHeadersToAdd = append(out.ResponseHeadersToAdd, ops.responseAdd...)
			out.ResponseHeadersToRemove = append(out.ResponseHeadersToRemove, ops.responseRemove...)
			// The route-level rewrite wins, so that one and several
			// destinations behave alike.
			if ops.authority != "" && action.HostRewriteSpecifier == nil {
				action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: ops.authority}
			}
		}
		hash := b.hash.forDestination(dst.GetDestination(), src.ns)
		if hp := hashPolicy(hash); hp != nil {
			action.HashPolicy = append(action.HashPolicy, hp)
		}
		// Retries stay on the hashed host (Istio: any consistentHash, even
		// without a key, drops the previous_hosts predicate).
		consistentHash = hash != nil
	default:
		weighted := make([]*routev3.WeightedCluster_ClusterWeight, 0, len(dests))
		for _, dst := range dests {
			if dst.GetWeight() <= 0 {
				continue // Istio drops zero weights when there are several destinations
			}
			cw := &routev3.WeightedCluster_ClusterWeight{
				Name:   destinationCluster(b.sc, dst.GetDestination(), src.ns, b.port),
				Weight: wrapperspb.UInt32(uint32(dst.GetWeight())),
			}
			if dst.GetHeaders() != nil {
				ops := translateHeaders(dst.GetHeaders())
				cw.RequestHeadersToAdd = ops.requestAdd
				cw.RequestHeadersToRemove = ops.requestRemove
				cw.ResponseHeadersToAdd = ops.responseAdd
				cw.ResponseHeadersToRemove = ops.responseRemove
				if ops.authority != "" {
					cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: ops.authority}
				}
			}
			if hp := hashPolicy(b.hash.forDestination(dst.GetDestination(), src.ns)); hp != nil {
				action.HashPolicy = append(action.HashPolicy, hp)
			}
			weighted = append(weighted, cw)
		}
		if len(weighted) == 0 {
			return errors.New("every destination has weight 0")
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	action.RetryPolicy = retryPolicy(policy, consistentHash)
	return nil
}

// redirect makes the route answer with an HTTP redirect.
func (b *routeBuilder) redirect(out *routev3.Route, in *networking.HTTPRedirect) error {
	ra := &routev3.RedirectAction{
		HostRedirect:         in.GetAuthority(),
		PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: in.GetUri()},
	}
	if gatewaySemantics(b.vs) {
		if rest, ok := strings.CutPrefix(in.GetUri(), "%PREFIX()%"); ok {
			ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: rest}
		}
	}
	if in.GetScheme() != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: in.GetScheme()}
	}
	if in.GetRedirectPort() != nil {
		switch rp := in.GetRedirectPort().(type) {
		case *networking.HTTPRedirect_DerivePort:
			// Envoy cannot derive the port, but routes are built per
			// listener port, which is the request's port.
			if rp.DerivePort == networking.HTTPRedirect_FROM_REQUEST_PORT {
				ra.PortRedirect = b.port
			}
		case *networking.HTTPRedirect_Port:
			ra.PortRedirect = rp.Port
		}
		scheme := in.GetScheme()
		if scheme == "" {
			scheme = "http" // sidecars never terminate TLS
		}
		if (ra.PortRedirect == 80 && scheme == "http") || (ra.PortRedirect == 443 && scheme == "https") {
			ra.PortRedirect = 0 // no explicit default port
		}
	}
	switch in.GetRedirectCode() {
	case 0, 301:
		ra.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	case 302:
		ra.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		ra.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		ra.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		ra.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		return fmt.Errorf("redirect code %d is not supported", in.GetRedirectCode())
	}
	out.Action = &routev3.Route_Redirect{Redirect: ra}
	return nil
}

// directResponse makes the route answer by itself.
func directResponse(out *routev3.Route, in *networking.HTTPDirectResponse) {
	dr := &routev3.DirectResponseAction{Status: in.GetStatus()}
	switch body := in.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body.String_}}
	case *networking.HTTPBody_Bytes:
		dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: body.Bytes}}
	}
	out.Action = &routev3.Route_DirectResponse{DirectResponse: dr}
}

// defaultOutboundRoute is the route of a service no VirtualService claims:
// everything to outbound|port||host, no timeout, the default retry policy.
func defaultOutboundRoute(sc *model.Scope, hash *hashRules, svc *model.Service, port uint32) *routev3.Route {
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: model.ClusterName(model.Outbound, port, "", svc.Hostname)},
		RetryPolicy:      retryPolicy(sc.Snapshot().Mesh.GetDefaultHttpRetryPolicy(), false),
	}
	setTimeout(action, nil, false) // Istio's default route ignores the proxy type here
	if hp := hashPolicy(hash.forService(svc, port)); hp != nil {
		action.HashPolicy = []*routev3.RouteAction_HashPolicy{hp}
	}
	return &routev3.Route{
		Name:      defaultRouteName,
		Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Decorator: &routev3.Decorator{Operation: traceOperation(svc.Hostname, port)},
		Action:    &routev3.Route_Route{Route: action},
	}
}

// destinationCluster names the cluster of a destination, as Istio's
// GetDestinationCluster: the destination's port, else the service's only
// port, else the listener port. Unknown hosts still get a name (traffic to
// it fails with "no cluster" until a service appears). ns resolves short
// host names ("" leaves them).
func destinationCluster(sc *model.Scope, d *networking.Destination, ns string, listenerPort uint32) string {
	host := d.GetHost()
	if host == "" {
		return unknownService
	}
	if ns != "" {
		host = sc.Snapshot().ResolveHost(host, ns)
	}
	port := listenerPort
	if n := d.GetPort().GetNumber(); n != 0 {
		port = n
	} else if svc, ok := sc.Service(host); ok && len(svc.Ports) == 1 {
		port = svc.Ports[0].Number
	}
	return model.ClusterName(model.Outbound, port, d.GetSubset(), host)
}

// setTimeout applies a VirtualService timeout (nil: none, which Envoy
// spells 0). Envoy proxies also get max_grpc_timeout so that grpc-timeout
// headers are honoured; proxyless gRPC reads max_stream_duration instead.
func setTimeout(action *routev3.RouteAction, t *durationpb.Duration, grpc bool) {
	action.Timeout = copyDuration(t)
	if grpc {
		action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: copyDuration(t)}
		return
	}
	action.MaxGrpcTimeout = copyDuration(t) //nolint:staticcheck // Istio still sets it
}

func copyDuration(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return durationpb.New(0)
	}
	return &durationpb.Duration{Seconds: d.GetSeconds(), Nanos: d.GetNanos()}
}

// mirrorPercent is the share of requests the deprecated single mirror
// copies: mirrorPercentage, else mirrorPercent, else all; 0 turns it off.
func mirrorPercent(in *networking.HTTPRoute) *corev3.RuntimeFractionalPercent {
	switch {
	case in.GetMirrorPercentage() != nil:
		if in.GetMirrorPercentage().GetValue() <= 0 {
			return nil
		}
		return &corev3.RuntimeFractionalPercent{DefaultValue: percentToFraction(in.GetMirrorPercentage())}
	case in.GetMirrorPercent() != nil: //nolint:staticcheck // deprecated field still honoured
		if in.GetMirrorPercent().GetValue() == 0 { //nolint:staticcheck
			return nil
		}
		return &corev3.RuntimeFractionalPercent{DefaultValue: integerToFraction(in.GetMirrorPercent().GetValue())} //nolint:staticcheck
	}
	return &corev3.RuntimeFractionalPercent{DefaultValue: integerToFraction(100)}
}

// mirrorPolicyPercent is mirrorPercent for one entry of mirrors.
func mirrorPolicyPercent(mp *networking.HTTPMirrorPolicy) *corev3.RuntimeFractionalPercent {
	if mp.GetPercentage() != nil {
		if mp.GetPercentage().GetValue() <= 0 {
			return nil
		}
		return &corev3.RuntimeFractionalPercent{DefaultValue: percentToFraction(mp.GetPercentage())}
	}
	return &corev3.RuntimeFractionalPercent{DefaultValue: integerToFraction(100)}
}

func mirrorPolicy(cluster string, p *corev3.RuntimeFractionalPercent) *routev3.RouteAction_RequestMirrorPolicy {
	return &routev3.RouteAction_RequestMirrorPolicy{
		Cluster:         cluster,
		RuntimeFraction: p,
		TraceSampled:    wrapperspb.Bool(false),
	}
}

// routeOperation names a route for tracing as Istio does: "<host>:<port><path>"
// for a single outbound cluster, else "<vs name>:<listener port><path>".
func routeOperation(r *routev3.Route, vsName string, port uint32) string {
	path := "/*"
	switch ps := r.GetMatch().GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		path = ps.Prefix + "*"
	case *routev3.RouteMatch_Path:
		path = ps.Path
	case *routev3.RouteMatch_SafeRegex:
		path = ps.SafeRegex.GetRegex()
	}
	if host, p, ok := parseOutboundCluster(r.GetRoute().GetCluster()); ok {
		return host + ":" + p + path
	}
	return vsName + ":" + strconv.FormatUint(uint64(port), 10) + path
}

// parseOutboundCluster splits outbound|port|subset|host.
func parseOutboundCluster(c string) (host, port string, ok bool) {
	parts := strings.SplitN(c, "|", 4)
	if len(parts) != 4 || parts[0] != model.Outbound {
		return "", "", false
	}
	if _, err := strconv.ParseUint(parts[1], 10, 16); err != nil {
		return "", "", false
	}
	return parts[3], parts[1], true
}

func traceOperation(host string, port uint32) string {
	return host + ":" + strconv.FormatUint(uint64(port), 10) + "/*"
}

// configMetadata points Envoy's route metadata at the VirtualService, the
// path Istio's tools (istioctl x describe, Kiali) read.
func configMetadata(vs config.Config) *corev3.Metadata {
	path := "/apis/networking.istio.io/v1/namespaces/" + vs.Namespace + "/virtual-service/" + vs.Name
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"istio": {Fields: map[string]*structpb.Value{"config": structpb.NewStringValue(path)}},
	}}
}

// gatewaySemantics reports whether the VirtualService was derived from a
// Gateway API route (Istio's internal annotation), which changes prefix
// matching, rewrites and missing-backend handling.
func gatewaySemantics(vs config.Config) bool {
	return vs.Annotations["internal.istio.io/route-semantics"] == "gateway"
}

// isCatchAll reports whether a route matches every request.
func isCatchAll(r *routev3.Route) bool {
	m := r.GetMatch()
	all := false
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		all = ps.Prefix == "/"
	case *routev3.RouteMatch_PathSeparatedPrefix:
		all = ps.PathSeparatedPrefix == "/"
	case *routev3.RouteMatch_SafeRegex:
		all = ps.SafeRegex.GetRegex() == ".*"
	}
	return all && len(m.GetHeaders()) == 0 && len(m.GetQueryParameters()) == 0 && len(m.GetDynamicMetadata()) == 0
}

func vsName(vs config.Config) string {
	return "virtual service " + vs.Namespace + "/" + vs.Name
}

func routeLabel(in *networking.HTTPRoute, i int) string {
	if in.GetName() != "" {
		return in.GetName()
	}
	return "#" + strconv.Itoa(i)
}
