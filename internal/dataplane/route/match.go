package route

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellismesh/trellis/internal/dataplane/strmatch"
)

// maxRegexLen bounds a configured regular expression. Go's regexp (RE2
// syntax and semantics, linear time) has no program-size limit like
// Envoy's re2.max_program_size; a length bound keeps compile cost bounded.
const maxRegexLen = 64 << 10

// compileRegex compiles an Envoy RegexMatcher (google_re2 is the only
// engine) for a full match, as RE2::FullMatch.
func compileRegex(m *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if m == nil {
		return nil, errors.New("regex matcher is missing")
	}
	return compileFull(m.GetRegex())
}

func compileFull(expr string) (*regexp.Regexp, error) {
	return strmatch.CompileFullRegex(expr, maxRegexLen)
}

// compilePartial compiles an unanchored regex (rewrites search anywhere).
func compilePartial(expr string) (*regexp.Regexp, error) {
	if len(expr) > maxRegexLen {
		return nil, fmt.Errorf("regex is %d bytes; maximum is %d", len(expr), maxRegexLen)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid regex %q: %w", expr, err)
	}
	return re, nil
}

// headerKind is the kind of a HeaderMatcher.
type headerKind uint8

const (
	hdrPresent headerKind = iota
	hdrString
	hdrExactLegacy // deprecated exact_match: "" matches any value
	hdrRange
)

// headerMatcher is a compiled HeaderMatcher, with Envoy's semantics
// (HeaderUtility::HeaderData*): a present_match compares presence (and is
// then inverted); every other kind fails on an absent header, even when
// inverted, unless treat_missing_header_as_empty; several values are
// joined with ",".
type headerMatcher struct {
	name           string
	kind           headerKind
	sm             strmatch.Matcher
	present        bool
	start, end     int64
	invert         bool
	missingAsEmpty bool
}

func compileHeaderMatcher(h *routev3.HeaderMatcher) (headerMatcher, error) {
	out := headerMatcher{
		name:           strings.ToLower(h.GetName()),
		invert:         h.GetInvertMatch(),
		missingAsEmpty: h.GetTreatMissingHeaderAsEmpty(),
	}
	if out.name == "" {
		return out, errors.New("header matcher has no name")
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		out.kind, out.present = hdrPresent, true
	case *routev3.HeaderMatcher_PresentMatch:
		out.kind, out.present = hdrPresent, s.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		out.kind, out.sm = hdrExactLegacy, strmatch.Matcher{Kind: strmatch.Exact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.kind, out.sm = hdrString, strmatch.Matcher{Kind: strmatch.Prefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.kind, out.sm = hdrString, strmatch.Matcher{Kind: strmatch.Suffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.kind, out.sm = hdrString, strmatch.Matcher{Kind: strmatch.Contains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		out.kind = hdrString
		out.sm.Kind = strmatch.Regex
		out.sm.Re, err = compileRegex(s.SafeRegexMatch)
	case *routev3.HeaderMatcher_StringMatch:
		out.kind = hdrString
		out.sm, err = strmatch.Compile(s.StringMatch, maxRegexLen)
	case *routev3.HeaderMatcher_RangeMatch:
		out.kind, out.start, out.end = hdrRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	default:
		err = fmt.Errorf("unsupported header match %T", s)
	}
	if err != nil {
		return out, fmt.Errorf("header %q: %w", out.name, err)
	}
	return out, nil
}

func (h *headerMatcher) match(req *Request) bool {
	v, ok := req.Header(h.name)
	if h.kind == hdrPresent {
		return (h.present == ok) != h.invert
	}
	if !ok {
		if !h.missingAsEmpty {
			return false
		}
		v = ""
	}
	var m bool
	switch h.kind {
	case hdrString:
		m = h.sm.Match(v)
	case hdrExactLegacy:
		m = h.sm.Value == "" || v == h.sm.Value
	case hdrRange:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		m = err == nil && n >= h.start && n < h.end
	}
	return m != h.invert
}

// queryMatcher is a compiled QueryParameterMatcher: the first value of the
// parameter must be present and, with a string_match, match it.
type queryMatcher struct {
	name string
	sm   *strmatch.Matcher
}

func (q *queryMatcher) match(req *Request) bool {
	v, ok := req.QueryParam(q.name)
	if !ok {
		return false
	}
	return q.sm == nil || q.sm.Match(v)
}

// cookieMatcher is a compiled CookieMatcher: absent is a non-match, which
// invert_match turns into a match.
type cookieMatcher struct {
	name   string
	sm     strmatch.Matcher
	invert bool
}

func (c *cookieMatcher) match(req *Request) bool {
	v, ok := req.Cookie(c.name)
	return (ok && c.sm.Match(v)) != c.invert
}

// pathKind is the path specifier of a RouteMatch.
type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparated
	pathConnect
)

// matcher is a compiled RouteMatch.
type matcher struct {
	kind            pathKind
	value           string // prefix, path or separated prefix; lower case when caseInsensitive
	caseInsensitive bool
	re              *regexp.Regexp

	runtime *Fraction
	grpc    bool
	headers []headerMatcher
	query   []queryMatcher
	cookies []cookieMatcher
	// TLS context options; nil means not checked.
	presented, validated *bool
	// never is set for matchers on dynamic metadata or filter state, which
	// the route table cannot see: such a route never matches (fail closed).
	never bool
}

func compileMatch(m *routev3.RouteMatch) (matcher, error) {
	var out matcher
	if m == nil {
		return out, errors.New("match is missing")
	}
	out.caseInsensitive = m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.value = pathPrefix, str(p.Prefix)
	case *routev3.RouteMatch_Path:
		out.kind, out.value = pathExact, str(p.Path)
	case *routev3.RouteMatch_PathSeparatedPrefix:
		v := p.PathSeparatedPrefix
		if v == "" || v[0] != '/' || strings.ContainsAny(v, "?#") || (len(v) > 1 && v[len(v)-1] == '/') {
			return out, fmt.Errorf("match.path_separated_prefix %q must start with '/', not end with '/' and hold no '?' or '#'", v)
		}
		out.kind, out.value = pathSeparated, str(v)
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return out, fmt.Errorf("match.safe_regex: %w", err)
		}
		out.kind, out.re, out.caseInsensitive = pathRegex, re, false
	case *routev3.RouteMatch_ConnectMatcher_:
		out.kind = pathConnect
	case *routev3.RouteMatch_PathMatchPolicy:
		return out, fmt.Errorf("match.path_match_policy %q is not supported", p.PathMatchPolicy.GetName())
	default:
		return out, errors.New("match has no path specifier")
	}
	if out.caseInsensitive {
		out.value = strings.ToLower(out.value)
	}
	if rf := m.GetRuntimeFraction(); rf != nil {
		f, err := runtimeFraction(rf)
		if err != nil {
			return out, fmt.Errorf("match.runtime_fraction: %w", err)
		}
		out.runtime = &f
	}
	out.grpc = m.GetGrpc() != nil
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatcher(h)
		if err != nil {
			return out, fmt.Errorf("match.headers[%d]: %w", i, err)
		}
		out.headers = append(out.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := queryMatcher{name: q.GetName()}
		if qm.name == "" {
			return out, fmt.Errorf("match.query_parameters[%d]: no name", i)
		}
		if sm := q.GetStringMatch(); sm != nil {
			c, err := strmatch.Compile(sm, maxRegexLen)
			if err != nil {
				return out, fmt.Errorf("match.query_parameters[%d] %q: %w", i, qm.name, err)
			}
			qm.sm = &c
		}
		out.query = append(out.query, qm)
	}
	for i, c := range m.GetCookies() {
		sm, err := strmatch.Compile(c.GetStringMatch(), maxRegexLen)
		if err != nil {
			return out, fmt.Errorf("match.cookies[%d] %q: %w", i, c.GetName(), err)
		}
		out.cookies = append(out.cookies, cookieMatcher{name: c.GetName(), sm: sm, invert: c.GetInvertMatch()})
	}
	if t := m.GetTlsContext(); t != nil {
		if t.GetPresented() != nil {
			v := t.GetPresented().GetValue()
			out.presented = &v
		}
		if t.GetValidated() != nil {
			v := t.GetValidated().GetValue()
			out.validated = &v
		}
	}
	out.never = len(m.GetDynamicMetadata()) > 0 || len(m.GetFilterState()) > 0
	return out, nil
}

// match runs the route's checks. Envoy evaluates runtime fraction, gRPC,
// headers, query parameters, cookies, TLS context and metadata before the
// path; every check is pure, so the cheap path check goes first here with
// the same result.
func (m *matcher) match(req *Request) (ok bool) {
	if m.never {
		return false
	}
	if !m.matchPath(req) {
		return false
	}
	if m.runtime != nil && !m.runtime.Sample(req.Random) {
		return false
	}
	if m.grpc && !req.isGRPC() {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].match(req) {
			return false
		}
	}
	for i := range m.query {
		if !m.query[i].match(req) {
			return false
		}
	}
	for i := range m.cookies {
		if !m.cookies[i].match(req) {
			return false
		}
	}
	if m.presented != nil && *m.presented != req.PeerCertPresented {
		return false
	}
	if m.validated != nil && *m.validated != req.PeerCertValidated {
		return false
	}
	return true
}

func (m *matcher) matchPath(req *Request) bool {
	if m.kind == pathConnect {
		return req.Method == "CONNECT"
	}
	if req.Path == "" {
		return false // only CONNECT routes serve path-less requests
	}
	p := pathOnly(req.Path)
	switch m.kind {
	case pathPrefix:
		if m.caseInsensitive {
			return strmatch.HasPrefixFold(p, m.value)
		}
		return strings.HasPrefix(p, m.value)
	case pathExact:
		if m.caseInsensitive {
			return strmatch.EqualFold(p, m.value)
		}
		return p == m.value
	case pathSeparated:
		if len(p) < len(m.value) {
			return false
		}
		if m.caseInsensitive {
			if !strmatch.EqualFold(p[:len(m.value)], m.value) {
				return false
			}
		} else if p[:len(m.value)] != m.value {
			return false
		}
		return len(p) == len(m.value) || p[len(m.value)] == '/'
	case pathRegex:
		return m.re.MatchString(p)
	}
	return false
}

// matchedLen is the length of the path prefix the route matched, for
// prefix_rewrite (Envoy's matched_path): the prefix for prefix and
// path-separated routes, the whole path (no query) for the others.
func (m *matcher) matchedLen(path string) int {
	switch m.kind {
	case pathPrefix, pathSeparated:
		return len(m.value)
	}
	return len(pathOnly(path))
}
