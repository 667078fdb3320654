package jwt

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"

// MetadataNamespace is the dynamic metadata namespace verified payloads go
// under (the filter's canonical name, whatever it is called in the chain).
const MetadataNamespace = "envoy.filters.http.jwt_authn"

// defaultClockSkew is Envoy's clock_skew_seconds default.
const defaultClockSkew = 60 * time.Second

// Factory builds JWT filters. Now is the clock (nil: time.Now).
type Factory struct {
	Now func() time.Time
}

// provider is a compiled JwtProvider.
type provider struct {
	name          string
	issuer        string
	audiences     []string
	locs          []location
	keys          []key
	forward       bool
	payloadHeader string
	padPayload    bool
	payloadMeta   string
	spaceClaims   map[string]bool
	claimHeaders  []claimHeader
	skew          time.Duration
	requireExp    bool
}

type claimHeader struct {
	header string
	claim  []string // dotted path
}

// rule is a compiled RequirementRule.
type rule struct {
	prefix, path string // one is set; prefix "" with path "" never happens
	exact        bool
	req          *requirement
}

// Filter is a compiled JWT authentication filter. It is immutable.
type Filter struct {
	providers   map[string]*provider
	order       []*provider // by name, for allow_missing issuer lookup
	allLocs     []location
	rules       []rule
	bypassCORS  bool
	now         func() time.Time
	stripDetail bool
}

// Build decodes, validates and compiles the filter's JwtAuthentication.
func (f Factory) Build(name string, config *anypb.Any) (filter.Filter, error) {
	msg := &jwtv3.JwtAuthentication{}
	if config != nil {
		if err := anypb.UnmarshalTo(config, msg, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("typed_config: %w", err)
		}
	}
	if err := pgv.ValidateAll(msg); err != nil {
		return nil, fmt.Errorf("invalid JwtAuthentication: %w", err)
	}
	switch {
	case msg.GetFilterStateRules() != nil:
		return nil, errors.New("filter_state_rules are not supported")
	case len(msg.GetRequirementMap()) > 0:
		return nil, errors.New("requirement_map is not supported")
	}
	out := &Filter{
		providers:   map[string]*provider{},
		bypassCORS:  msg.GetBypassCorsPreflight(),
		now:         f.Now,
		stripDetail: msg.GetStripFailureResponse(),
	}
	if out.now == nil {
		out.now = time.Now
	}
	names := make([]string, 0, len(msg.GetProviders()))
	for n := range msg.GetProviders() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p, err := compileProvider(n, msg.GetProviders()[n])
		if err != nil {
			return nil, fmt.Errorf("providers[%q]: %w", n, err)
		}
		out.providers[n] = p
		out.order = append(out.order, p)
		for _, l := range p.locs {
			if !containsLoc(out.allLocs, l) {
				out.allLocs = append(out.allLocs, l)
			}
		}
	}
	for i, r := range msg.GetRules() {
		cr, err := out.compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		out.rules = append(out.rules, cr)
	}
	return out, nil
}

func containsLoc(ls []location, l location) bool {
	for _, o := range ls {
		if o == l {
			return true
		}
	}
	return false
}

func compileProvider(name string, p *jwtv3.JwtProvider) (*provider, error) {
	switch {
	case p.GetRemoteJwks() != nil:
		return nil, errors.New("remote_jwks is not supported: the control plane inlines fetched keys as local_jwks")
	case p.GetSubjects() != nil:
		return nil, errors.New("subjects is not supported")
	case p.GetMaxLifetime() != nil:
		return nil, errors.New("max_lifetime is not supported")
	case p.GetHeaderInMetadata() != "":
		return nil, errors.New("header_in_metadata is not supported")
	case p.GetFailedStatusInMetadata() != "":
		return nil, errors.New("failed_status_in_metadata is not supported")
	}
	out := &provider{
		name:          name,
		issuer:        p.GetIssuer(),
		audiences:     p.GetAudiences(),
		forward:       p.GetForward(),
		payloadHeader: p.GetForwardPayloadHeader(),
		padPayload:    p.GetPadForwardPayloadHeader(),
		payloadMeta:   p.GetPayloadInMetadata(),
		skew:          defaultClockSkew,
		requireExp:    p.GetRequireExpiration(),
	}
	if p.ClockSkewSeconds != 0 {
		out.skew = time.Duration(p.GetClockSkewSeconds()) * time.Second
	}
	if cs := p.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims(); len(cs) > 0 {
		out.spaceClaims = map[string]bool{}
		for _, c := range cs {
			out.spaceClaims[c] = true
		}
	}
	for i, h := range p.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, fmt.Errorf("from_headers[%d]: empty name", i)
		}
		out.locs = append(out.locs, location{kind: inHeader, name: canonicalHeader(h.GetName()), prefix: h.GetValuePrefix()})
	}
	for _, q := range p.GetFromParams() {
		out.locs = append(out.locs, location{kind: inParam, name: q})
	}
	for _, c := range p.GetFromCookies() {
		out.locs = append(out.locs, location{kind: inCookie, name: c})
	}
	if len(out.locs) == 0 {
		out.locs = defaultLocations()
	}
	for i, c := range p.GetClaimToHeaders() {
		if c.GetClaimName() == "" || c.GetHeaderName() == "" {
			return nil, fmt.Errorf("claim_to_headers[%d]: claim_name and header_name are required", i)
		}
		out.claimHeaders = append(out.claimHeaders, claimHeader{
			header: canonicalHeader(c.GetHeaderName()), claim: strings.Split(c.GetClaimName(), "."),
		})
	}
	local := p.GetLocalJwks()
	if local == nil {
		return nil, errors.New("local_jwks is required")
	}
	doc := local.GetInlineString()
	if b := local.GetInlineBytes(); b != nil {
		doc = string(b)
	}
	if doc == "" && local.GetInlineString() == "" && local.GetInlineBytes() == nil {
		return nil, errors.New("local_jwks: only inline_string and inline_bytes are supported")
	}
	keys, err := parseJWKS(doc)
	if err != nil {
		return nil, fmt.Errorf("local_jwks: %w", err)
	}
	out.keys = keys
	return out, nil
}

func (f *Filter) compileRule(r *jwtv3.RequirementRule) (rule, error) {
	m := r.GetMatch()
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || m.GetRuntimeFraction() != nil ||
		m.GetGrpc() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 {
		return rule{}, errors.New("match: only prefix and path are supported")
	}
	var out rule
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.prefix = ps.Prefix
	case *routev3.RouteMatch_Path:
		out.path, out.exact = ps.Path, true
	default:
		return rule{}, errors.New("match: only prefix and path are supported")
	}
	if m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() {
		return rule{}, errors.New("match: case_sensitive false is not supported")
	}
	if name := r.GetRequirementName(); name != "" {
		return rule{}, errors.New("requirement_name is not supported")
	}
	if r.GetRequires() == nil {
		// A rule without requirement: matching requests are not checked.
		return out, nil
	}
	req, err := f.compileRequirement(r.GetRequires(), 0)
	if err != nil {
		return rule{}, fmt.Errorf("requires: %w", err)
	}
	out.req = req
	return out, nil
}

// Wrap implements filter.Filter.
func (f *Filter) Wrap(next filter.Handler) filter.Handler {
	return filter.HandlerFunc(func(s *filter.Stream) {
		if f.check(s) {
			next.ServeStream(s)
		}
	})
}

// check verifies the stream's tokens; it answers the stream and returns
// false when the request must not continue.
func (f *Filter) check(s *filter.Stream) bool {
	path, query, _ := strings.Cut(s.Routing.Path, "?")
	var req *requirement
	matched := false
	for i := range f.rules {
		r := &f.rules[i]
		if r.exact && path == r.path || !r.exact && strings.HasPrefix(path, r.prefix) {
			req, matched = r.req, true
			break
		}
	}
	if !matched || req == nil {
		return true
	}
	if f.bypassCORS && s.Request.Method == http.MethodOptions &&
		s.Request.Header.Get("Origin") != "" && s.Request.Header.Get("Access-Control-Request-Method") != "" {
		return true
	}
	ev := evaluation{f: f, r: s.Request, query: query, now: f.now()}
	st := ev.eval(req)
	if st != OK {
		f.reject(s, path, st)
		return false
	}
	ev.apply(s)
	return true
}

// reject sends Envoy's local reply for a failed verification.
func (f *Filter) reject(s *filter.Stream, path string, st Status) {
	code := http.StatusUnauthorized
	if st == AudienceNotAllowed {
		code = http.StatusForbidden
	}
	realm := `Bearer realm="` + s.Routing.Scheme + "://" + s.Routing.Authority + path + `"`
	if st != Missing {
		realm += `, error="invalid_token"`
	}
	body, hdr := st.String(), http.Header{"Www-Authenticate": {realm}}
	if f.stripDetail {
		body, hdr = "", nil
	}
	s.Respond(filter.Reply{
		Status:  code,
		Body:    body,
		Header:  hdr,
		Details: "jwt_authn_access_denied{" + strings.ReplaceAll(st.String(), " ", "_") + "}",
	})
}

// apply writes the outputs of every token verified for the request.
func (ev *evaluation) apply(s *filter.Stream) {
	for _, v := range ev.verified {
		p := v.p
		if p.payloadMeta != "" {
			if s.Metadata == nil {
				s.Metadata = map[string]map[string]any{}
			}
			md := s.Metadata[MetadataNamespace]
			if md == nil {
				md = map[string]any{}
				s.Metadata[MetadataNamespace] = md
			}
			md[p.payloadMeta] = p.normalize(v.t.payload)
		}
		if p.payloadHeader != "" {
			val := strings.TrimRight(v.t.payloadB64, "=")
			if p.padPayload {
				if n := len(val) % 4; n != 0 {
					val += strings.Repeat("=", 4-n)
				}
			}
			s.Request.Header.Set(p.payloadHeader, val)
		}
		for _, ch := range p.claimHeaders {
			if val, ok := claimString(v.t.payload, ch.claim); ok {
				s.Request.Header.Set(ch.header, val)
			}
		}
	}
	for _, v := range ev.verified {
		if !v.p.forward {
			remove(s.Request, v.f)
		}
	}
}

// normalize returns the payload for metadata: space-delimited string
// claims become lists. The token's map is not modified.
func (p *provider) normalize(payload map[string]any) map[string]any {
	if len(p.spaceClaims) == 0 {
		return payload
	}
	out := make(map[string]any, len(payload))
	for k, v := range payload {
		if s, ok := v.(string); ok && p.spaceClaims[k] {
			parts := strings.Fields(s)
			l := make([]any, len(parts))
			for i, e := range parts {
				l[i] = e
			}
			out[k] = l
			continue
		}
		out[k] = v
	}
	return out
}

// claimString renders a claim for a header: strings as they are, numbers
// and booleans in JSON form; other types are not copied.
func claimString(payload map[string]any, path []string) (string, bool) {
	var cur any = payload
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[k]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
