package jwt

import (
	"fmt"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
)

// Names Istio uses.
const (
	// FilterName is the HTTP filter's name.
	FilterName = "envoy.filters.http.jwt_authn"
	// PayloadKey is payload_in_metadata: verified payloads live at
	// metadata[FilterName][PayloadKey], where RBAC reads iss, sub and claims.
	PayloadKey = "payload"
	// NoKeys is the key set of a provider whose keys are unavailable.
	NoKeys = `{"keys":[]}`
)

// defaultSpaceDelimitedClaims are always split into lists in metadata.
var defaultSpaceDelimitedClaims = []string{"permission", "scope"}

// Keys looks up the key set the control plane fetched for a jwksUri.
type Keys func(uri string) (jwks string, ok bool)

// Result is the generated filter (nil when no rule applies) and what was
// degraded on the way.
type Result struct {
	Filter   *hcmv3.HttpFilter
	Warnings []string
}

// Build generates the JWT filter for the RequestAuthentications that apply
// to a workload, in Istio's order.
func Build(policies []config.Config, keys Keys) Result {
	var out Result
	type jwtRule struct {
		rule *security.JWTRule
		from string // namespace/name, for warnings
	}
	var rules []jwtRule
	for _, c := range policies {
		ra, ok := c.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		for _, r := range ra.GetJwtRules() {
			if r != nil {
				rules = append(rules, jwtRule{rule: r, from: c.Namespace + "/" + c.Name})
			}
		}
	}
	if len(rules) == 0 {
		return out
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].rule.GetIssuer() < rules[j].rule.GetIssuer() })

	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var inner, outer []*jwtv3.JwtRequirement
	for i, jr := range rules {
		r := jr.rule
		p := &jwtv3.JwtProvider{
			Issuer:               r.GetIssuer(),
			Audiences:            r.GetAudiences(),
			Forward:              r.GetForwardOriginalToken(),
			ForwardPayloadHeader: r.GetOutputPayloadToHeader(),
			PayloadInMetadata:    PayloadKey,
			NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{
				SpaceDelimitedClaims: spaceDelimitedClaims(r.GetSpaceDelimitedClaims()),
			},
			FromParams:  r.GetFromParams(),
			FromCookies: r.GetFromCookies(),
		}
		for _, c := range r.GetOutputClaimToHeaders() {
			p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.GetHeader(), ClaimName: c.GetClaim()})
		}
		for _, h := range r.GetFromHeaders() {
			p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
		}
		doc := r.GetJwks()
		switch {
		case doc != "":
		case r.GetJwksUri() != "":
			var ok bool
			if doc, ok = keys(r.GetJwksUri()); !ok || doc == "" {
				doc = NoKeys
				out.Warnings = append(out.Warnings, fmt.Sprintf(
					"RequestAuthentication %s: no keys fetched yet from jwksUri %q; tokens of issuer %q are rejected",
					jr.from, r.GetJwksUri(), r.GetIssuer()))
			}
		default:
			doc = NoKeys
			out.Warnings = append(out.Warnings, fmt.Sprintf(
				"RequestAuthentication %s: issuer %q has neither jwks nor jwksUri and OpenID discovery is not supported; its tokens are rejected",
				jr.from, r.GetIssuer()))
		}
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: doc},
		}}
		name := fmt.Sprintf("origins-%d", i)
		cfg.Providers[name] = p
		prov := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
		inner = append(inner, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
			RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
				prov,
				{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
			}},
		}})
		outer = append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}})
	}
	req := inner[0]
	if len(inner) > 1 {
		// A token, if present, must be valid for its provider (the and of
		// {Pi or missing}); the outer or lets a token pass when providers
		// share a location (the other providers then see a foreign issuer).
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{
			Requirements: append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{
				RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner},
			}}),
		}}}
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	a, err := anypb.New(cfg)
	if err != nil {
		// Marshalling a well-formed message does not fail; report rather
		// than panic if it ever does.
		out.Warnings = append(out.Warnings, fmt.Sprintf("marshalling the JWT filter: %v", err))
		return out
	}
	out.Filter = &hcmv3.HttpFilter{Name: FilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}
	return out
}

// spaceDelimitedClaims is Istio's list: the rule's claims plus scope and
// permission, deduplicated and sorted.
func spaceDelimitedClaims(extra []string) []string {
	set := map[string]bool{}
	for _, c := range append(append([]string(nil), defaultSpaceDelimitedClaims...), extra...) {
		set[c] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
