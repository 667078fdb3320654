package authz

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// generator turns the values of one condition into one matcher (their
// or); a nil result with a nil error adds nothing.
type generator interface {
	permission(key string, values []string, forTCP bool) (*rbacv3.Permission, error)
	principal(key string, values []string, forTCP bool) (*rbacv3.Principal, error)
}

var errUnimplemented = fmt.Errorf("unimplemented")

func httpOnly(key string) error { return fmt.Errorf("%q is HTTP only", key) }

// perValue builds the or of one permission per value.
func permOr(values []string, one func(string) (*rbacv3.Permission, error)) (*rbacv3.Permission, error) {
	var or []*rbacv3.Permission
	for _, v := range values {
		p, err := one(v)
		if err != nil {
			return nil, err
		}
		or = append(or, p)
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}}, nil
}

func prinOr(values []string, one func(string) (*rbacv3.Principal, error)) (*rbacv3.Principal, error) {
	var or []*rbacv3.Principal
	for _, v := range values {
		p, err := one(v)
		if err != nil {
			return nil, err
		}
		or = append(or, p)
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: or}}}, nil
}

type noPrincipal struct{}

func (noPrincipal) principal(string, []string, bool) (*rbacv3.Principal, error) {
	return nil, errUnimplemented
}

type noPermission struct{}

func (noPermission) permission(string, []string, bool) (*rbacv3.Permission, error) {
	return nil, errUnimplemented
}

type destIPGen struct{ noPrincipal }

func (destIPGen) permission(_ string, vs []string, _ bool) (*rbacv3.Permission, error) {
	return permOr(vs, func(v string) (*rbacv3.Permission, error) {
		c, err := cidrRange(v)
		if err != nil {
			return nil, err
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: c}}, nil
	})
}

type destPortGen struct{ noPrincipal }

func (destPortGen) permission(_ string, vs []string, _ bool) (*rbacv3.Permission, error) {
	return permOr(vs, func(v string) (*rbacv3.Permission, error) {
		p, err := strconv.ParseUint(v, 10, 32)
		if err != nil || p > 65535 {
			return nil, fmt.Errorf("invalid port %s", v)
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(p)}}, nil
	})
}

type sniGen struct{ noPrincipal }

func (sniGen) permission(_ string, vs []string, _ bool) (*rbacv3.Permission, error) {
	return permOr(vs, func(v string) (*rbacv3.Permission, error) {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: stringMatcher(v, "")}}, nil
	})
}

// envoyFilterGen: experimental.envoy.filters.a.b[c] reads metadata of
// filter envoy.filters.a.b at key c; a value "[v]" matches a list item.
type envoyFilterGen struct{ noPrincipal }

func (envoyFilterGen) permission(key string, vs []string, _ bool) (*rbacv3.Permission, error) {
	parts := strings.SplitN(strings.TrimSuffix(strings.TrimPrefix(key, "experimental."), "]"), "[", 2)
	if len(parts) != 2 || parts[1] == "" {
		return nil, fmt.Errorf("invalid key: %v", key)
	}
	return permOr(vs, func(v string) (*rbacv3.Permission, error) {
		var vm *matcherv3.ValueMatcher
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			vm = listOneOf(strVal(stringMatcher(strings.Trim(v, "[]"), "")))
		} else {
			vm = strVal(stringMatcher(v, ""))
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{Metadata: metadata(parts[0], []string{parts[1]}, vm)}}, nil
	})
}

type srcIPGen struct{ noPermission }

func (srcIPGen) principal(_ string, vs []string, _ bool) (*rbacv3.Principal, error) {
	return prinOr(vs, func(v string) (*rbacv3.Principal, error) {
		c, err := cidrRange(v)
		if err != nil {
			return nil, err
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}, nil
	})
}

type remoteIPGen struct{ noPermission }

func (remoteIPGen) principal(_ string, vs []string, _ bool) (*rbacv3.Principal, error) {
	return prinOr(vs, func(v string) (*rbacv3.Principal, error) {
		c, err := cidrRange(v)
		if err != nil {
			return nil, err
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}, nil
	})
}

type namespaceGen struct{ noPermission }

func (namespaceGen) principal(_ string, vs []string, _ bool) (*rbacv3.Principal, error) {
	return prinOr(vs, func(v string) (*rbacv3.Principal, error) {
		re := fmt.Sprintf(".*/ns/%s/.*", strings.ReplaceAll(v, "*", ".*"))
		return authenticated(regexMatcher(re)), nil
	})
}

type principalGen struct{ noPermission }

func (principalGen) principal(_ string, vs []string, _ bool) (*rbacv3.Principal, error) {
	return prinOr(vs, func(v string) (*rbacv3.Principal, error) {
		return authenticated(stringMatcher(v, "spiffe://")), nil
	})
}

// serviceAccountGen: "<sa>" (policy namespace) or "<ns>/<sa>".
type serviceAccountGen struct {
	noPermission
	ns string
}

func (g serviceAccountGen) principal(_ string, vs []string, _ bool) (*rbacv3.Principal, error) {
	return prinOr(vs, func(v string) (*rbacv3.Principal, error) {
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			ns, sa = g.ns, v
		}
		return authenticated(regexMatcher(fmt.Sprintf("spiffe://.+/ns/%s/(.+/|)sa/%s(/.+)?", ns, sa))), nil
	})
}

// requestPrincipalGen: "<iss>/<sub>" (split at the last "/"), with Istio's
// wildcards, against the JWT payload's iss and sub.
type requestPrincipalGen struct{ noPermission }

func (requestPrincipalGen) principal(key string, vs []string, forTCP bool) (*rbacv3.Principal, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	anyRe := regexMatcher(".+")
	var or []*rbacv3.Principal
	for _, v := range vs {
		idx := strings.LastIndex(v, "/")
		found := idx >= 0
		iss, sub := v, ""
		if found {
			iss, sub = v[:idx], v[idx+1:]
		}
		var mi, ms *matcherv3.StringMatcher
		switch {
		case v == "*":
			mi, ms = anyRe, anyRe
		case strings.HasPrefix(v, "*"):
			if found {
				if iss == "*" {
					mi = anyRe
				} else {
					mi = suffixMatcher(strings.TrimPrefix(iss, "*"))
				}
				ms = exactMatcher(sub)
			} else {
				mi, ms = anyRe, suffixMatcher(strings.TrimPrefix(v, "*"))
			}
		case strings.HasSuffix(v, "*"):
			if found {
				mi = exactMatcher(iss)
				if sub == "*" {
					ms = anyRe
				} else {
					ms = prefixMatcher(strings.TrimSuffix(sub, "*"))
				}
			} else {
				mi, ms = prefixMatcher(strings.TrimSuffix(v, "*")), anyRe
			}
		default:
			mi, ms = exactMatcher(iss), exactMatcher(sub)
		}
		or = append(or, prinAnd([]*rbacv3.Principal{
			prinMetadata(metadata(jwtFilter, []string{jwtPayload, "iss"}, strVal(mi))),
			prinMetadata(metadata(jwtFilter, []string{jwtPayload, "sub"}, strVal(ms))),
		}))
	}
	if len(or) == 1 {
		return or[0], nil
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: or}}}, nil
}

// claimGen matches a JWT claim (a string, or a list holding the value).
type claimGen struct {
	noPermission
	claims []string
}

func (g claimGen) principal(key string, vs []string, forTCP bool) (*rbacv3.Principal, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	var ms []*matcherv3.ValueMatcher
	for _, v := range vs {
		ms = append(ms, strVal(stringMatcher(v, "")))
	}
	value := orValues(ms)
	path := append([]string{jwtPayload}, g.claims...)
	vm := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{
		ValueMatchers: []*matcherv3.ValueMatcher{listOneOf(value), value},
	}}}
	return prinMetadata(metadata(jwtFilter, path, vm)), nil
}

type headerGen struct {
	noPermission
	name string
}

func (g headerGen) principal(key string, vs []string, forTCP bool) (*rbacv3.Principal, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	return prinOr(vs, func(v string) (*rbacv3.Principal, error) {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatcher(g.name, v, false)}}, nil
	})
}

type hostGen struct{ noPrincipal }

func (hostGen) permission(key string, vs []string, forTCP bool) (*rbacv3.Permission, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	return permOr(vs, func(v string) (*rbacv3.Permission, error) {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: hostMatcher(v)}}, nil
	})
}

// hostMatcher matches a policy host against :authority in every form a
// client may write it (SECURITY A8): any case, with or without a port,
// with or without the trailing dot of a fully qualified name. Istio
// matches "secret.com" exactly, so "secret.com:80" and "secret.com."
// pass a DENY on it. Prefix forms ("secret.*") already cover ports; a
// host that names a port is matched as written, in any case.
func hostMatcher(v string) *routev3.HeaderMatcher {
	if v == "*" || strings.HasSuffix(v, "*") || strings.Contains(v, ":") {
		return headerMatcher(":authority", v, true)
	}
	re := regexp.QuoteMeta(strings.TrimSuffix(v, "."))
	if strings.HasPrefix(v, "*") {
		re = ".*" + regexp.QuoteMeta(strings.TrimSuffix(strings.TrimPrefix(v, "*"), "."))
	}
	return &routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: regexMatcher(`(?i)` + re + `\.?(:[0-9]*)?`)}}
}

type methodGen struct{ noPrincipal }

func (methodGen) permission(key string, vs []string, forTCP bool) (*rbacv3.Permission, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	return permOr(vs, func(v string) (*rbacv3.Permission, error) {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatcher(":method", v, false)}}, nil
	})
}

type pathGen struct{ noPrincipal }

func (pathGen) permission(key string, vs []string, forTCP bool) (*rbacv3.Permission, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	return permOr(vs, func(v string) (*rbacv3.Permission, error) {
		if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
			tmpl := strings.NewReplacer("{**}", "**", "{*}", "*").Replace(v)
			return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
				Name:        uriTemplateMatcherName,
				TypedConfig: toAny(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: tmpl}),
			}}}, nil
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: stringMatcher(v, "")},
		}}}, nil
	})
}

// stringMatcher is Istio's StringMatcherWithPrefix: "*" is regex ".+",
// "*x" a suffix (a regex when prefix is set), "x*" a prefix, else exact.
func stringMatcher(v, prefix string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatcher(".+")
	case strings.HasPrefix(v, "*"):
		if prefix == "" {
			return suffixMatcher(strings.TrimPrefix(v, "*"))
		}
		return regexMatcher(prefix + ".*" + strings.TrimPrefix(v, "*"))
	case strings.HasSuffix(v, "*"):
		return prefixMatcher(prefix + strings.TrimSuffix(v, "*"))
	}
	return exactMatcher(prefix + v)
}

func exactMatcher(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func prefixMatcher(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v}}
}

func suffixMatcher(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v}}
}

func regexMatcher(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// headerMatcher: "*" is a presence match; hosts compare case-insensitively.
func headerMatcher(name, v string, ignoreCase bool) *routev3.HeaderMatcher {
	if v == "*" {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	sm := stringMatcher(v, "")
	sm.IgnoreCase = ignoreCase
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func strVal(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
}

func listOneOf(v *matcherv3.ValueMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: v},
	}}}
}

func orValues(ms []*matcherv3.ValueMatcher) *matcherv3.ValueMatcher {
	if len(ms) == 1 {
		return ms[0]
	}
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: ms}}}
}

func metadata(filter string, path []string, v *matcherv3.ValueMatcher) *matcherv3.MetadataMatcher {
	m := &matcherv3.MetadataMatcher{Filter: filter, Value: v}
	for _, k := range path {
		m.Path = append(m.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return m
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

func prinMetadata(m *matcherv3.MetadataMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: m}}
}

func permAny() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }

func prinAny() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func permAnd(ps []*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func prinAnd(ps []*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

// cidrRange parses "1.2.3.4" (a /32 or /128) or "1.2.3.0/24".
func cidrRange(v string) (*corev3.CidrRange, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q: %w", v, err)
		}
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil, fmt.Errorf("invalid IP %q: %w", v, err)
	}
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}, nil
}
