package route

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// HashKind is the source of one hash policy.
type HashKind uint8

// Hash sources.
const (
	HashHeader HashKind = iota
	HashCookie
	HashSourceIP
	HashQueryParameter
	HashFilterState
)

// HashMethod is one RouteAction.hash_policy entry.
type HashMethod struct {
	Kind     HashKind
	Name     string // header, cookie, query parameter or filter-state key
	Terminal bool
	// Cookie: TTL > 0 (or TTLSet with 0, a session cookie) generates the
	// cookie when the request lacks it; Path and Attributes go into the
	// Set-Cookie header.
	TTL        time.Duration
	TTLSet     bool
	Path       string
	Attributes []CookieAttribute
	// Header: an optional regex rewrite applied to each value before hashing.
	rewrite *regexRewrite
}

// CookieAttribute is a Set-Cookie attribute (name, optional value).
type CookieAttribute struct{ Name, Value string }

// HashPolicy is a route's ordered hash policies.
type HashPolicy struct {
	Methods []HashMethod
}

// SetCookie is a cookie the router must add to the response because a
// cookie hash policy with a TTL generated it.
type SetCookie struct {
	Name, Value, Path string
	MaxAge            time.Duration
	Attributes        []CookieAttribute
}

// String renders the Set-Cookie header value as Envoy's makeSetCookieValue:
// name="value"; Max-Age=N; Path=p; attributes; HttpOnly.
func (c SetCookie) String() string {
	var b strings.Builder
	b.WriteString(c.Name)
	b.WriteString(`="`)
	b.WriteString(c.Value)
	b.WriteByte('"')
	if s := int64(c.MaxAge / time.Second); s != 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(s, 10))
	}
	if c.Path != "" {
		b.WriteString("; Path=")
		b.WriteString(c.Path)
	}
	for _, a := range c.Attributes {
		b.WriteString("; ")
		b.WriteString(a.Name)
		if a.Value != "" {
			b.WriteByte('=')
			b.WriteString(a.Value)
		}
	}
	b.WriteString("; HttpOnly")
	return b.String()
}

func compileHashPolicy(list []*routev3.RouteAction_HashPolicy) (*HashPolicy, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := &HashPolicy{}
	for i, p := range list {
		m := HashMethod{Terminal: p.GetTerminal()}
		switch s := p.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			m.Kind, m.Name = HashHeader, strings.ToLower(s.Header.GetHeaderName())
			if rr := s.Header.GetRegexRewrite(); rr != nil {
				r, err := compileRegexRewrite(rr)
				if err != nil {
					return nil, fmt.Errorf("hash_policy[%d].header.regex_rewrite: %w", i, err)
				}
				m.rewrite = r
			}
		case *routev3.RouteAction_HashPolicy_Cookie_:
			m.Kind, m.Name, m.Path = HashCookie, s.Cookie.GetName(), s.Cookie.GetPath()
			if s.Cookie.GetTtl() != nil {
				m.TTLSet, m.TTL = true, s.Cookie.GetTtl().AsDuration()
			}
			for _, a := range s.Cookie.GetAttributes() {
				m.Attributes = append(m.Attributes, CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
			}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			if !s.ConnectionProperties.GetSourceIp() {
				continue // hashes nothing
			}
			m.Kind = HashSourceIP
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			m.Kind, m.Name = HashQueryParameter, s.QueryParameter.GetName()
		case *routev3.RouteAction_HashPolicy_FilterState_:
			m.Kind, m.Name = HashFilterState, s.FilterState.GetKey()
		default:
			return nil, fmt.Errorf("hash_policy[%d]: %w", i, errors.New("no policy specifier"))
		}
		if m.Kind != HashSourceIP && m.Name == "" {
			return nil, fmt.Errorf("hash_policy[%d]: empty name", i)
		}
		out.Methods = append(out.Methods, m)
	}
	if len(out.Methods) == 0 {
		return nil, nil
	}
	return out, nil
}

// Hash computes the request hash as Envoy's HashPolicyImpl::generateHash:
// each policy that yields a value is folded in (the previous value rotated
// left by one, XORed with the new one); a terminal policy that produced a
// hash stops the walk. Values are hashed with xxHash64 (seed 0) as Envoy.
// ok is false when no policy yielded a value. Cookies are not generated;
// see HashWithCookies.
func (p *HashPolicy) Hash(req *Request) (uint64, bool) {
	h, ok, _ := p.hash(req, nil, false)
	return h, ok
}

// HashWithCookies is Hash that also generates the cookies of cookie
// policies with a TTL that the request lacks, appended to dst, as Envoy's
// router: the value is the 16-hex-digit xxHash64 of the downstream remote
// address followed by the local address (both "ip:port").
func (p *HashPolicy) HashWithCookies(req *Request, dst []SetCookie) (uint64, bool, []SetCookie) {
	return p.hash(req, dst, true)
}

func (p *HashPolicy) hash(req *Request, dst []SetCookie, gen bool) (uint64, bool, []SetCookie) {
	if p == nil {
		return 0, false, dst
	}
	var hash uint64
	have := false
	for i := range p.Methods {
		m := &p.Methods[i]
		v, ok := uint64(0), false
		switch m.Kind {
		case HashHeader:
			v, ok = hashHeader(req, m)
		case HashCookie:
			if c, found := req.Cookie(m.Name); found && c != "" {
				v, ok = xxhash.Sum64String(c), true
			} else if m.TTLSet {
				c := generatedCookie(req)
				v, ok = xxhash.Sum64String(c), true
				if gen {
					dst = append(dst, SetCookie{Name: m.Name, Value: c, Path: m.Path, MaxAge: m.TTL, Attributes: m.Attributes})
				}
			}
		case HashSourceIP:
			if req.Source.Addr().IsValid() {
				var buf [64]byte
				v, ok = xxhash.Sum64(req.Source.Addr().AppendTo(buf[:0])), true
			}
		case HashQueryParameter:
			if q, found := req.QueryParam(m.Name); found {
				v, ok = xxhash.Sum64String(q), true
			}
		case HashFilterState:
			if req.FilterState != nil {
				v, ok = req.FilterState(m.Name)
			}
		}
		if ok {
			if have {
				hash = (hash<<1 | hash>>63) ^ v
			} else {
				hash = v
			}
			have = true
		}
		if m.Terminal && have {
			break
		}
	}
	return hash, have, dst
}

// hashHeader hashes every value of the header, sorted so that order does
// not matter, chaining xxHash64 seeds as Envoy's HashUtil::xxHash64(span).
func hashHeader(req *Request, m *HashMethod) (uint64, bool) {
	var one [1]string
	vals := req.headerValues(m.Name, &one)
	if len(vals) == 0 {
		return 0, false
	}
	if m.rewrite != nil || len(vals) > 1 {
		vals = slices.Clone(vals)
		if m.rewrite != nil {
			for i, v := range vals {
				vals[i] = m.rewrite.replace(v)
			}
		}
		slices.Sort(vals)
	}
	var h uint64
	for _, v := range vals {
		d := xxhash.NewWithSeed(h)
		_, _ = d.WriteString(v)
		h = d.Sum64()
	}
	return h, true
}

// generatedCookie is the value Envoy's router gives a generated hash cookie.
func generatedCookie(req *Request) string {
	s := req.Source.String() + req.Local.String()
	return fmt.Sprintf("%016x", xxhash.Sum64String(s))
}

// regexRewrite is a compiled RegexMatchAndSubstitute: every match of the
// pattern is replaced (RE2::GlobalReplace) by the substitution, whose RE2
// back-references \0..\9 are translated to Go's ${n}.
type regexRewrite struct {
	re       *regexp.Regexp
	template string
}

func compileRegexRewrite(r *matcherv3.RegexMatchAndSubstitute) (*regexRewrite, error) {
	re, err := compilePartial(r.GetPattern().GetRegex())
	if err != nil {
		return nil, err
	}
	tmpl, err := re2Template(r.GetSubstitution(), re.NumSubexp())
	if err != nil {
		return nil, err
	}
	return &regexRewrite{re: re, template: tmpl}, nil
}

// re2Template converts an RE2 rewrite string into a regexp.Expand template,
// rejecting what RE2::CheckRewriteString rejects (a lone backslash, a
// backslash before anything but a digit or backslash, a group beyond the
// pattern's).
func re2Template(sub string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c != '\\':
			b.WriteByte(c)
		case i+1 >= len(sub):
			return "", fmt.Errorf("substitution %q ends with a lone backslash", sub)
		default:
			i++
			n := sub[i]
			switch {
			case n == '\\':
				b.WriteByte('\\')
			case n >= '0' && n <= '9':
				if int(n-'0') > groups {
					return "", fmt.Errorf("substitution %q refers to group \\%c; the pattern has %d", sub, n, groups)
				}
				b.WriteString("${")
				b.WriteByte(n)
				b.WriteByte('}')
			default:
				return "", fmt.Errorf("substitution %q has an invalid escape \\%c", sub, n)
			}
		}
	}
	return b.String(), nil
}

func (r *regexRewrite) replace(s string) string { return r.re.ReplaceAllString(s, r.template) }
