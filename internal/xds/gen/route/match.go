package route

import (
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// Pseudo-headers HTTPMatchRequest fields match on.
const (
	headerMethod    = ":method"
	headerAuthority = ":authority"
	headerScheme    = ":scheme"
)

// meshGateway is the gateway name that means "the sidecars".
const meshGateway = "mesh"

// JWT claim routing: a header named @request.auth.claims.<a>.<b> (or
// @request.auth.claims[a][b]) matches the claim in the JWT filter's
// metadata instead of a header.
const (
	jwtClaimHeader  = "@request.auth.claims"
	jwtFilter       = "envoy.filters.http.jwt_authn"
	jwtPayloadField = "payload"
)

// sourceMatches reports whether a match applies to the proxy: when the
// match names gateways, one must be "mesh" (sourceLabels are then not
// checked, as in Istio); otherwise its sourceLabels must be among the
// proxy's labels and its sourceNamespace, if any, the proxy's namespace.
func sourceMatches(m *networking.HTTPMatchRequest, p *model.Proxy) bool {
	if m == nil {
		return true
	}
	if len(m.GetGateways()) > 0 {
		for _, g := range m.GetGateways() {
			if g == meshGateway {
				return true
			}
		}
		return false
	}
	if !model.LabelsMatch(m.GetSourceLabels(), p.Labels) {
		return false
	}
	return m.GetSourceNamespace() == "" || m.GetSourceNamespace() == p.Namespace
}

// translateMatch turns one HTTPMatchRequest into an Envoy RouteMatch (nil:
// everything). Headers come sorted by name, then :method, :authority and
// :scheme; query parameters sorted by name.
func translateMatch(vs config.Config, in *networking.HTTPMatchRequest) *routev3.RouteMatch {
	out := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if in == nil {
		return out
	}
	for _, name := range sortedKeys(in.GetHeaders()) {
		sm := in.GetHeaders()[name]
		if mm := jwtClaimMatcher(name, sm); mm != nil {
			out.DynamicMetadata = append(out.DynamicMetadata, mm)
			continue
		}
		out.Headers = append(out.Headers, headerMatcher(name, sm))
	}
	for _, name := range sortedKeys(in.GetWithoutHeaders()) {
		sm := in.GetWithoutHeaders()[name]
		if mm := jwtClaimMatcher(name, sm); mm != nil {
			mm.Invert = true
			out.DynamicMetadata = append(out.DynamicMetadata, mm)
			continue
		}
		h := headerMatcher(name, sm)
		h.InvertMatch = true
		// A missing header does not equal the value, so it must pass; Envoy
		// forbids the flag together with present_match.
		if !isPresenceMatch(sm) {
			h.TreatMissingHeaderAsEmpty = true
		}
		out.Headers = append(out.Headers, h)
	}
	sort.SliceStable(out.Headers, func(i, j int) bool { return out.Headers[i].GetName() < out.Headers[j].GetName() })

	if uri := in.GetUri(); uri != nil {
		switch m := uri.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			out.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Exact}
		case *networking.StringMatch_Prefix:
			if gatewaySemantics(vs) && m.Prefix != "/" {
				out.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: strings.TrimSuffix(m.Prefix, "/")}
			} else {
				out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.Prefix}
			}
		case *networking.StringMatch_Regex:
			out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}
		}
	}
	out.CaseSensitive = wrapperspb.Bool(!in.GetIgnoreUriCase())

	if in.GetMethod() != nil {
		out.Headers = append(out.Headers, headerMatcher(headerMethod, in.GetMethod()))
	}
	if in.GetAuthority() != nil {
		out.Headers = append(out.Headers, headerMatcher(headerAuthority, in.GetAuthority()))
	}
	if in.GetScheme() != nil {
		out.Headers = append(out.Headers, headerMatcher(headerScheme, in.GetScheme()))
	}
	for _, name := range sortedKeys(in.GetQueryParams()) {
		out.QueryParameters = append(out.QueryParameters, queryMatcher(name, in.GetQueryParams()[name]))
	}
	return out
}

// headerMatcher matches one header; an empty StringMatch (or Istio's
// legacy regex "*") means "present".
func headerMatcher(name string, sm *networking.StringMatch) *routev3.HeaderMatcher {
	out := &routev3.HeaderMatcher{Name: name}
	if isPresenceMatch(sm) {
		out.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		return out
	}
	if m := stringMatcher(sm); m != nil {
		out.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: m}
	}
	return out
}

func queryMatcher(name string, sm *networking.StringMatch) *routev3.QueryParameterMatcher {
	out := &routev3.QueryParameterMatcher{Name: name}
	if isPresenceMatch(sm) {
		out.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		return out
	}
	if m := stringMatcher(sm); m != nil {
		out.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: m}
	}
	return out
}

func isPresenceMatch(sm *networking.StringMatch) bool {
	if sm.GetMatchType() == nil {
		return true
	}
	// "*" is not RE2; Istio reads it as "any value".
	re, ok := sm.GetMatchType().(*networking.StringMatch_Regex)
	return ok && re.Regex == "*"
}

// stringMatcher converts an Istio StringMatch (nil when it has no type).
func stringMatcher(sm *networking.StringMatch) *matcherv3.StringMatcher {
	switch m := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}}
	}
	return nil
}

// jwtClaimMatcher returns the metadata matcher for a JWT claim pseudo-header
// (nil for ordinary headers). A claim may be a string or a list of strings,
// so either form matches.
func jwtClaimMatcher(name string, sm *networking.StringMatch) *matcherv3.MetadataMatcher {
	if !strings.HasPrefix(strings.ToLower(name), jwtClaimHeader) {
		return nil
	}
	var claims []string
	switch rest := name[len(jwtClaimHeader):]; {
	case strings.HasPrefix(rest, ".") && len(rest) > 1:
		claims = strings.Split(rest[1:], ".")
	case strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") && len(rest) > 2:
		claims = strings.Split(rest[1:len(rest)-1], "][")
	default:
		return nil
	}
	path := make([]*matcherv3.MetadataMatcher_PathSegment, 0, len(claims)+1)
	for _, k := range append([]string{jwtPayloadField}, claims...) {
		path = append(path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	value := func() *matcherv3.ValueMatcher {
		return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: stringMatcher(sm)}}
	}
	if isPresenceMatch(sm) {
		value = func() *matcherv3.ValueMatcher {
			return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
		}
	}
	return &matcherv3.MetadataMatcher{
		Filter: jwtFilter,
		Path:   path,
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{
			ValueMatchers: []*matcherv3.ValueMatcher{
				{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
					MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: value()},
				}}},
				value(),
			},
		}}},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
