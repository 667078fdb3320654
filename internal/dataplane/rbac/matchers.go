package rbac

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellismesh/trellis/internal/dataplane/strmatch"
)

// matcher is one compiled permission or principal rule.
type matcher interface {
	match(in *Input) bool
}

type anyRule struct{}

func (anyRule) match(*Input) bool { return true }

type andRule []matcher

func (a andRule) match(in *Input) bool {
	for _, m := range a {
		if !m.match(in) {
			return false
		}
	}
	return true
}

type orRule []matcher

func (o orRule) match(in *Input) bool {
	for _, m := range o {
		if m.match(in) {
			return true
		}
	}
	return false
}

// and and or drop a set of one (same result, one call less). An empty
// and matches everything and an empty or nothing, as in Envoy. and orders
// its rules cheapest first (rules are pure, so the order changes only the
// cost): with many policies most fail on a port or a path before their
// header, principal or regex rules run.
func and(ms []matcher) matcher {
	if len(ms) == 1 {
		return ms[0]
	}
	slices.SortStableFunc(ms, func(a, b matcher) int { return cost(a) - cost(b) })
	return andRule(ms)
}

// cost ranks a rule by what evaluating it takes: integer and prefix
// compares, then string matchers, then header readings, then regexes,
// metadata and templates.
func cost(m matcher) int {
	switch r := m.(type) {
	case anyRule, portRule, *ipRule:
		return 0
	case *urlPathRule:
		return matcherCost(r.sm, 1)
	case *sniRule:
		return matcherCost(r.sm, 1)
	case *headerRule:
		return matcherCost(r.sm, 2)
	case notRule:
		return cost(r.m)
	case andRule:
		return maxCost(r)
	case orRule:
		return maxCost(r)
	}
	return 3
}

func matcherCost(sm strmatch.Matcher, base int) int {
	if sm.Kind == strmatch.Regex {
		return 3
	}
	return base
}

func maxCost(ms []matcher) int {
	c := 0
	for _, m := range ms {
		c = max(c, cost(m))
	}
	return c
}

func or(ms []matcher) matcher {
	if len(ms) == 1 {
		return ms[0]
	}
	return orRule(ms)
}

type notRule struct{ m matcher }

// match negates the inner rule read the other way round: "not m" surely
// holds only when m cannot hold under any reading, and possibly holds
// when m does not surely hold.
func (n notRule) match(in *Input) bool {
	in.surely = !in.surely
	m := n.m.match(in)
	in.surely = !in.surely
	return !m
}

func compilePermission(p *rbacv3.Permission, depth int) (matcher, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("rules nested deeper than %d", MaxDepth)
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, errors.New("any must be true")
		}
		return anyRule{}, nil
	case *rbacv3.Permission_AndRules:
		ms, err := compilePermissions(r.AndRules.GetRules(), depth)
		if err != nil {
			return nil, fmt.Errorf("and_rules: %w", err)
		}
		return and(ms), nil
	case *rbacv3.Permission_OrRules:
		ms, err := compilePermissions(r.OrRules.GetRules(), depth)
		if err != nil {
			return nil, fmt.Errorf("or_rules: %w", err)
		}
		return or(ms), nil
	case *rbacv3.Permission_NotRule:
		m, err := compilePermission(r.NotRule, depth+1)
		if err != nil {
			return nil, fmt.Errorf("not_rule: %w", err)
		}
		return notRule{m}, nil
	case *rbacv3.Permission_Header:
		return compileHeader(r.Header)
	case *rbacv3.Permission_UrlPath:
		return compileURLPath(r.UrlPath)
	case *rbacv3.Permission_DestinationIp:
		pfx, err := cidr(r.DestinationIp)
		if err != nil {
			return nil, fmt.Errorf("destination_ip: %w", err)
		}
		return &ipRule{kind: ipDestination, prefix: pfx}, nil
	case *rbacv3.Permission_DestinationPort:
		return portRule{lo: r.DestinationPort, hi: r.DestinationPort + 1}, nil
	case *rbacv3.Permission_DestinationPortRange:
		return portRule{lo: uint32(r.DestinationPortRange.GetStart()), hi: uint32(r.DestinationPortRange.GetEnd())}, nil
	case *rbacv3.Permission_Metadata:
		return compileMetadata(r.Metadata)
	case *rbacv3.Permission_RequestedServerName:
		sm, err := strmatch.Compile(r.RequestedServerName, maxRegexLen)
		if err != nil {
			return nil, fmt.Errorf("requested_server_name: %w", err)
		}
		return &sniRule{sm}, nil
	case *rbacv3.Permission_UriTemplate:
		return compileURITemplateExtension(r.UriTemplate)
	case *rbacv3.Permission_Matcher:
		return nil, fmt.Errorf("matcher extension %q is not supported", r.Matcher.GetName())
	case *rbacv3.Permission_SourcedMetadata:
		return nil, errors.New("sourced_metadata is not supported")
	default:
		return nil, fmt.Errorf("unsupported permission rule %T", r)
	}
}

func compilePermissions(ps []*rbacv3.Permission, depth int) ([]matcher, error) {
	out := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePermission(p, depth+1)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func compilePrincipal(p *rbacv3.Principal, depth int) (matcher, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("ids nested deeper than %d", MaxDepth)
	}
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !r.Any {
			return nil, errors.New("any must be true")
		}
		return anyRule{}, nil
	case *rbacv3.Principal_AndIds:
		ms, err := compilePrincipals(r.AndIds.GetIds(), depth)
		if err != nil {
			return nil, fmt.Errorf("and_ids: %w", err)
		}
		return and(ms), nil
	case *rbacv3.Principal_OrIds:
		ms, err := compilePrincipals(r.OrIds.GetIds(), depth)
		if err != nil {
			return nil, fmt.Errorf("or_ids: %w", err)
		}
		return or(ms), nil
	case *rbacv3.Principal_NotId:
		m, err := compilePrincipal(r.NotId, depth+1)
		if err != nil {
			return nil, fmt.Errorf("not_id: %w", err)
		}
		return notRule{m}, nil
	case *rbacv3.Principal_Authenticated_:
		a := authenticatedRule{}
		if pn := r.Authenticated.GetPrincipalName(); pn != nil {
			sm, err := strmatch.Compile(pn, maxRegexLen)
			if err != nil {
				return nil, fmt.Errorf("authenticated.principal_name: %w", err)
			}
			a.name = &sm
		}
		return &a, nil
	case *rbacv3.Principal_SourceIp:
		pfx, err := cidr(r.SourceIp)
		if err != nil {
			return nil, fmt.Errorf("source_ip: %w", err)
		}
		return &ipRule{kind: ipDirectRemote, prefix: pfx}, nil
	case *rbacv3.Principal_DirectRemoteIp:
		pfx, err := cidr(r.DirectRemoteIp)
		if err != nil {
			return nil, fmt.Errorf("direct_remote_ip: %w", err)
		}
		return &ipRule{kind: ipDirectRemote, prefix: pfx}, nil
	case *rbacv3.Principal_RemoteIp:
		pfx, err := cidr(r.RemoteIp)
		if err != nil {
			return nil, fmt.Errorf("remote_ip: %w", err)
		}
		return &ipRule{kind: ipRemote, prefix: pfx}, nil
	case *rbacv3.Principal_Header:
		return compileHeader(r.Header)
	case *rbacv3.Principal_UrlPath:
		return compileURLPath(r.UrlPath)
	case *rbacv3.Principal_Metadata:
		return compileMetadata(r.Metadata)
	case *rbacv3.Principal_FilterState:
		return nil, errors.New("filter_state is not supported")
	case *rbacv3.Principal_SourcedMetadata:
		return nil, errors.New("sourced_metadata is not supported")
	case *rbacv3.Principal_Custom:
		return nil, fmt.Errorf("custom principal %q is not supported", r.Custom.GetName())
	default:
		return nil, fmt.Errorf("unsupported principal %T", r)
	}
}

func compilePrincipals(ps []*rbacv3.Principal, depth int) ([]matcher, error) {
	out := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePrincipal(p, depth+1)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// cidr converts a CidrRange; the address is masked to the prefix length.
func cidr(c *corev3.CidrRange) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address_prefix %q: %w", c.GetAddressPrefix(), err)
	}
	a = a.Unmap()
	bits := int(c.GetPrefixLen().GetValue())
	if c.GetPrefixLen() == nil {
		bits = a.BitLen()
	}
	if bits > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("prefix_len %d is longer than the address", bits)
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

type ipKind uint8

const (
	ipDestination ipKind = iota
	ipDirectRemote
	ipRemote
)

type ipRule struct {
	kind   ipKind
	prefix netip.Prefix
}

func (r *ipRule) match(in *Input) bool {
	var a netip.Addr
	switch r.kind {
	case ipDestination:
		a = in.Destination.Addr()
	case ipDirectRemote:
		a = in.DirectRemote.Addr()
	default:
		a = in.remote()
	}
	return a.IsValid() && r.prefix.Contains(a.Unmap())
}

// portRule matches the destination port in [lo, hi).
type portRule struct{ lo, hi uint32 }

func (r portRule) match(in *Input) bool {
	p := uint32(in.Destination.Port())
	return in.Destination.IsValid() && p >= r.lo && p < r.hi
}

type sniRule struct{ sm strmatch.Matcher }

func (r *sniRule) match(in *Input) bool { return r.sm.Match(in.SNI) }

// authenticatedRule matches a verified peer, by SAN when name is set.
type authenticatedRule struct{ name *strmatch.Matcher }

func (r *authenticatedRule) match(in *Input) bool {
	if !in.Authenticated {
		return false
	}
	if r.name == nil {
		return true
	}
	c := in.PeerCert
	if c == nil {
		return in.PeerIdentity != "" && r.name.Match(in.PeerIdentity)
	}
	if len(c.URIs) > 0 {
		for _, u := range c.URIs {
			if r.name.Match(u.String()) {
				return true
			}
		}
		return false
	}
	if len(c.DNSNames) > 0 {
		for _, d := range c.DNSNames {
			if r.name.Match(d) {
				return true
			}
		}
		return false
	}
	return r.name.Match(c.Subject.String())
}

type urlPathRule struct{ sm strmatch.Matcher }

func compileURLPath(p *matcherv3.PathMatcher) (matcher, error) {
	sm, err := strmatch.Compile(p.GetPath(), maxRegexLen)
	if err != nil {
		return nil, fmt.Errorf("url_path: %w", err)
	}
	return &urlPathRule{sm}, nil
}

func (r *urlPathRule) match(in *Input) bool {
	if in.Request == nil {
		return false
	}
	return r.sm.Match(in.urlPath)
}

// pathOnly strips the query and fragment of a :path.
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// headerRule is a compiled HeaderMatcher with Envoy's semantics for one
// header value: present_match compares presence (then inverted); any
// other kind fails on an absent header unless treat_missing_header_as_empty.
//
// A header sent several times, or as a comma-separated list, can be read
// several ways: Envoy joins the values with "," and matches once, but
// the application may read the first value, the last, or one element of
// the list. A client sending "x-role: user" and "x-role: admin" (or
// "x-role: user,admin") would then slip past a DENY on "x-role: admin"
// (SECURITY A9). So the rule is evaluated over every reading — each
// value, each list element (trimmed), and the joined value — and the
// engine's direction picks the safe answer (Input.surely): a DENY or LOG
// engine matches when any reading matches, with string comparisons
// (other than regexes) also tried ignoring ASCII case; an ALLOW engine
// matches only when every value and the joined value match exactly (and,
// for an inverted rule, when no reading matches in any case). A header
// with one value and no comma has one reading: Envoy's semantics exactly.
type headerRule struct {
	name           string
	kind           uint8 // hdrPresent, hdrString, hdrRange
	sm             strmatch.Matcher
	present        bool
	start, end     int64
	invert         bool
	missingAsEmpty bool
}

const (
	hdrPresent uint8 = iota
	hdrString
	hdrRange
)

func compileHeader(h *routev3.HeaderMatcher) (matcher, error) {
	out := headerRule{
		name:           strings.ToLower(h.GetName()),
		invert:         h.GetInvertMatch(),
		missingAsEmpty: h.GetTreatMissingHeaderAsEmpty(),
		kind:           hdrString,
	}
	if out.name == "" {
		return nil, errors.New("header: no name")
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		out.kind, out.present = hdrPresent, true
	case *routev3.HeaderMatcher_PresentMatch:
		out.kind, out.present = hdrPresent, s.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		out.sm = strmatch.Matcher{Kind: strmatch.Exact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.sm = strmatch.Matcher{Kind: strmatch.Prefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.sm = strmatch.Matcher{Kind: strmatch.Suffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.sm = strmatch.Matcher{Kind: strmatch.Contains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		out.sm.Kind = strmatch.Regex
		out.sm.Re, err = compileRegex(s.SafeRegexMatch.GetRegex())
	case *routev3.HeaderMatcher_StringMatch:
		out.sm, err = strmatch.Compile(s.StringMatch, maxRegexLen)
	case *routev3.HeaderMatcher_RangeMatch:
		out.kind, out.start, out.end = hdrRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	default:
		err = fmt.Errorf("unsupported header match %T", s)
	}
	if err != nil {
		return nil, fmt.Errorf("header %q: %w", out.name, err)
	}
	return &out, nil
}

func (h *headerRule) match(in *Input) bool {
	var one [1]string
	var values []string
	if r := in.Request; r != nil {
		switch h.name {
		case ":method":
			if r.Method != "" {
				one[0] = r.Method
				values = one[:]
			}
		case ":authority":
			if r.Authority != "" {
				one[0] = r.Authority
				values = one[:]
			}
		default:
			if h.name[0] == ':' || h.name == "host" {
				if v, ok := r.Header(h.name); ok {
					one[0] = v
					values = one[:]
				}
			} else if r.Headers != nil {
				values = r.Headers.Values(h.name)
			}
		}
	}
	if h.kind == hdrPresent {
		return (h.present == (len(values) > 0)) != h.invert
	}
	if len(values) == 0 {
		if !h.missingAsEmpty {
			return false
		}
		one[0] = ""
		values = one[:]
	}
	// Possibly matches (DENY): some reading's result is true. Surely
	// matches (ALLOW): every reading's result is true. One value without a
	// comma is one reading.
	if !in.surely {
		if h.invert {
			// Some reading does not match (strictly).
			return !h.everyReading(values, true, false)
		}
		return h.someReading(values, true, true)
	}
	if h.invert {
		// No reading matches, not even ignoring case.
		return !h.someReading(values, true, true)
	}
	return h.everyReading(values, false, false)
}

// readingMatches matches one reading of the header; fold also tries ASCII
// case-insensitive comparison for string kinds other than regexes.
func (h *headerRule) readingMatches(v string, fold bool) bool {
	if h.kind == hdrRange {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return err == nil && n >= h.start && n < h.end
	}
	if h.sm.Match(v) {
		return true
	}
	if fold && !h.sm.IgnoreCase && h.sm.Kind != strmatch.Regex {
		f := h.sm
		f.IgnoreCase = true
		return f.Match(v)
	}
	return false
}

// someReading reports whether some value, some list element (when
// elements is set) or the joined value matches.
func (h *headerRule) someReading(values []string, elements, fold bool) bool {
	for _, v := range values {
		if h.readingMatches(v, fold) {
			return true
		}
		if elements && strings.Contains(v, ",") {
			for rest := v; ; {
				e, more, found := strings.Cut(rest, ",")
				if h.readingMatches(strings.Trim(e, " \t"), fold) {
					return true
				}
				if !found {
					break
				}
				rest = more
			}
		}
	}
	return len(values) > 1 && h.readingMatches(strings.Join(values, ","), fold)
}

// everyReading reports whether every value, every list element (when
// elements is set) and the joined value match.
func (h *headerRule) everyReading(values []string, elements, fold bool) bool {
	for _, v := range values {
		if !h.readingMatches(v, fold) {
			return false
		}
		if elements && strings.Contains(v, ",") {
			for rest := v; ; {
				e, more, found := strings.Cut(rest, ",")
				if !h.readingMatches(strings.Trim(e, " \t"), fold) {
					return false
				}
				if !found {
					break
				}
				rest = more
			}
		}
	}
	return len(values) < 2 || h.readingMatches(strings.Join(values, ","), fold)
}

// maxRegexLen bounds policy regexes (they come from the control plane,
// which limits them too).
const maxRegexLen = 4096

func compileRegex(expr string) (*regexp.Regexp, error) {
	return strmatch.CompileFullRegex(expr, maxRegexLen)
}
