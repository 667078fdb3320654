package route

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/strmatch"
)

// CORS is a CORS policy (envoy.extensions.filters.http.cors.v3.CorsPolicy
// or the legacy route-level CorsPolicy). The policy a route hands out is
// already merged as Envoy's CORS filter reads it: each attribute from the
// most specific level that sets it (weighted cluster, route, virtual host,
// route configuration); enabled/shadow from the most specific policy.
type CORS struct {
	AllowMethods  string
	AllowHeaders  string
	ExposeHeaders string
	MaxAge        string

	AllowCredentials             bool
	AllowPrivateNetworkAccess    bool
	ForwardNotMatchingPreflights bool // default true

	// Enabled and Shadow are filter_enabled (default 100 %) and
	// shadow_enabled (default 0 %).
	Enabled Fraction
	Shadow  Fraction

	origins []strmatch.Matcher
}

// corsLevel is one level's policy before merging; nil pointers are unset.
type corsLevel struct {
	origins                                       []strmatch.Matcher
	methods, headers, expose, maxAge              string
	credentials, privateNetwork, forwardPreflight *bool
	enabled, shadow                               Fraction
}

func optBool(v *wrapperspb.BoolValue) *bool {
	if v == nil {
		return nil
	}
	b := v.GetValue()
	return &b
}

type corsProto interface {
	GetAllowOriginStringMatch() []*matcherv3.StringMatcher
	GetAllowMethods() string
	GetAllowHeaders() string
	GetExposeHeaders() string
	GetMaxAge() string
	GetAllowCredentials() *wrapperspb.BoolValue
	GetShadowEnabled() *corev3.RuntimeFractionalPercent
	GetAllowPrivateNetworkAccess() *wrapperspb.BoolValue
	GetForwardNotMatchingPreflights() *wrapperspb.BoolValue
}

func compileCORSLevel(p corsProto, filterEnabled *corev3.RuntimeFractionalPercent) (*corsLevel, error) {
	out := &corsLevel{
		methods:          p.GetAllowMethods(),
		headers:          p.GetAllowHeaders(),
		expose:           p.GetExposeHeaders(),
		maxAge:           p.GetMaxAge(),
		credentials:      optBool(p.GetAllowCredentials()),
		privateNetwork:   optBool(p.GetAllowPrivateNetworkAccess()),
		forwardPreflight: optBool(p.GetForwardNotMatchingPreflights()),
		enabled:          always,
	}
	for i, o := range p.GetAllowOriginStringMatch() {
		m, err := strmatch.Compile(o, maxRegexLen)
		if err != nil {
			return nil, fmt.Errorf("allow_origin_string_match[%d]: %w", i, err)
		}
		out.origins = append(out.origins, m)
	}
	var err error
	if filterEnabled != nil {
		if out.enabled, err = runtimeFraction(filterEnabled); err != nil {
			return nil, fmt.Errorf("filter_enabled: %w", err)
		}
	}
	if s := p.GetShadowEnabled(); s != nil {
		if out.shadow, err = runtimeFraction(s); err != nil {
			return nil, fmt.Errorf("shadow_enabled: %w", err)
		}
	}
	return out, nil
}

func decodeCORS(p *corsv3.CorsPolicy) (*corsLevel, error) {
	return compileCORSLevel(p, p.GetFilterEnabled())
}

func legacyCORS(p *routev3.CorsPolicy) (*corsLevel, error) {
	if p == nil {
		return nil, nil
	}
	return compileCORSLevel(p, p.GetFilterEnabled())
}

// mergeCORS merges levels, most specific first, as the CORS filter's
// per-attribute lookups. Nil when there is no level.
func mergeCORS(levels ...*corsLevel) *CORS {
	var out *CORS
	var cred, pna, fwd *bool
	for _, l := range levels {
		if l == nil {
			continue
		}
		if out == nil {
			out = &CORS{Enabled: l.enabled, Shadow: l.shadow}
		}
		if len(out.origins) == 0 {
			out.origins = l.origins
		}
		out.AllowMethods = firstNonEmpty(out.AllowMethods, l.methods)
		out.AllowHeaders = firstNonEmpty(out.AllowHeaders, l.headers)
		out.ExposeHeaders = firstNonEmpty(out.ExposeHeaders, l.expose)
		out.MaxAge = firstNonEmpty(out.MaxAge, l.maxAge)
		cred = firstSet(cred, l.credentials)
		pna = firstSet(pna, l.privateNetwork)
		fwd = firstSet(fwd, l.forwardPreflight)
	}
	if out == nil {
		return nil
	}
	out.AllowCredentials = cred != nil && *cred
	out.AllowPrivateNetworkAccess = pna != nil && *pna
	out.ForwardNotMatchingPreflights = fwd == nil || *fwd
	return out
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func firstSet(a, b *bool) *bool {
	if a != nil {
		return a
	}
	return b
}

// OriginAllowed reports whether origin matches an allowed origin (a matcher
// that matches "*" allows every origin, as Envoy).
func (c *CORS) OriginAllowed(origin string) bool {
	for i := range c.origins {
		if c.origins[i].Match("*") || c.origins[i].Match(origin) {
			return true
		}
	}
	return false
}

// CORSDecision is what the CORS filter does with a request.
type CORSDecision struct {
	// Respond means answer the preflight locally with 200 and Headers.
	Respond bool
	Headers HeaderMap
	// Origin is the allowed origin ("" when the request is not a CORS
	// request or its origin is not allowed).
	Origin string
}

// Preflight runs the request half of Envoy's CORS filter. A disabled
// policy (filter_enabled sampled with req.Random), or a request without
// Origin, passes untouched. An OPTIONS request with Origin and
// Access-Control-Request-Method is a preflight: it is answered locally
// with 200 (with the allow headers when the origin is allowed) unless the
// origin is not allowed and forward_not_matching_preflights holds. For
// other requests Origin is set when allowed, for Apply to use.
func (c *CORS) Preflight(req *Request) CORSDecision {
	if c == nil {
		return CORSDecision{}
	}
	enabled, shadow := c.Enabled.Sample(req.Random), c.Shadow.Sample(req.Random)
	if !enabled && !shadow {
		return CORSDecision{}
	}
	origin, ok := req.regularHeaderFirst("origin")
	if !ok || origin == "" {
		return CORSDecision{}
	}
	allowed := c.OriginAllowed(origin)
	if shadow && !enabled {
		return CORSDecision{}
	}
	var d CORSDecision
	if allowed {
		d.Origin = origin
	}
	reqMethod, _ := req.regularHeaderFirst("access-control-request-method")
	if req.Method != "OPTIONS" || reqMethod == "" {
		return d
	}
	if !allowed && c.ForwardNotMatchingPreflights {
		return d
	}
	h := HeaderMap{}
	if allowed {
		h.Set("access-control-allow-origin", origin)
	}
	if c.AllowCredentials {
		h.Set("access-control-allow-credentials", "true")
	}
	switch c.AllowMethods {
	case "":
	case "*":
		h.Set("access-control-allow-methods", reqMethod)
	default:
		h.Set("access-control-allow-methods", c.AllowMethods)
	}
	switch c.AllowHeaders {
	case "":
	case "*":
		if v, _ := req.regularHeaderFirst("access-control-request-headers"); v != "" {
			h.Set("access-control-allow-headers", v)
		}
	default:
		h.Set("access-control-allow-headers", c.AllowHeaders)
	}
	if c.MaxAge != "" {
		h.Set("access-control-max-age", c.MaxAge)
	}
	if c.AllowPrivateNetworkAccess {
		if v, _ := req.regularHeaderFirst("access-control-request-private-network"); v == "true" {
			h.Set("access-control-allow-private-network", "true")
		}
	}
	d.Respond, d.Headers = true, h
	return d
}

// Apply runs the response half of the filter for a request that was not
// answered locally: when the policy is enabled for req and its Origin is
// allowed, it sets Access-Control-Allow-Origin, -Allow-Credentials and
// -Expose-Headers on resp.
func (c *CORS) Apply(req *Request, resp HeaderMutator) {
	if c == nil || !c.Enabled.Sample(req.Random) {
		return
	}
	origin, ok := req.regularHeaderFirst("origin")
	if !ok || origin == "" || !c.OriginAllowed(origin) {
		return
	}
	resp.Set("access-control-allow-origin", origin)
	if c.AllowCredentials {
		resp.Set("access-control-allow-credentials", "true")
	}
	if c.ExposeHeaders != "" {
		resp.Set("access-control-expose-headers", c.ExposeHeaders)
	}
}
