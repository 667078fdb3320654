package tlssock

import (
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

type sanKind uint8

const (
	sanAny sanKind = iota // legacy match_subject_alt_names: every type
	sanDNS
	sanURI
	sanIP
	sanEmail
)

// sanMatcher is one compiled subject alt name matcher.
type sanMatcher struct {
	kind  sanKind
	match stringMatcher
}

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatcher struct {
	exact, prefix, suffix, contains string
	kind                            uint8 // 1 exact, 2 prefix, 3 suffix, 4 contains, 5 regex
	re                              *regexp.Regexp
	ignoreCase                      bool
}

func compileTypedSAN(m *tlsv3.SubjectAltNameMatcher) (sanMatcher, error) {
	var k sanKind
	switch m.GetSanType() {
	case tlsv3.SubjectAltNameMatcher_DNS:
		k = sanDNS
	case tlsv3.SubjectAltNameMatcher_URI:
		k = sanURI
	case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		k = sanIP
	case tlsv3.SubjectAltNameMatcher_EMAIL:
		k = sanEmail
	default:
		return sanMatcher{}, fmt.Errorf("san_type %s is not supported", m.GetSanType())
	}
	sm, err := compileStringMatcher(m.GetMatcher())
	if err != nil {
		return sanMatcher{}, fmt.Errorf("matcher: %w", err)
	}
	return sanMatcher{kind: k, match: sm}, nil
}

func compileStringMatcher(m *matcherv3.StringMatcher) (stringMatcher, error) {
	out := stringMatcher{ignoreCase: m.GetIgnoreCase()}
	norm := func(s string) string {
		if out.ignoreCase {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.exact = 1, norm(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		if p.Prefix == "" {
			return out, errors.New("prefix must not be empty")
		}
		out.kind, out.prefix = 2, norm(p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		if p.Suffix == "" {
			return out, errors.New("suffix must not be empty")
		}
		out.kind, out.suffix = 3, norm(p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		if p.Contains == "" {
			return out, errors.New("contains must not be empty")
		}
		out.kind, out.contains = 4, norm(p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return out, fmt.Errorf("safe_regex: %w", err)
		}
		out.kind, out.re = 5, re
	default:
		return out, errors.New("no match pattern")
	}
	return out, nil
}

func (m *stringMatcher) matches(s string) bool {
	if m.ignoreCase && m.kind != 5 {
		s = strings.ToLower(s)
	}
	switch m.kind {
	case 1:
		return s == m.exact
	case 2:
		return strings.HasPrefix(s, m.prefix)
	case 3:
		return strings.HasSuffix(s, m.suffix)
	case 4:
		return strings.Contains(s, m.contains)
	case 5:
		return m.re.MatchString(s)
	}
	return false
}

// matchDNS matches a DNS SAN; a wildcard SAN "*.example.com" matches an
// exact matcher for one label below it, as Envoy's DNS SAN matching does.
func (m *sanMatcher) matchDNS(san string) bool {
	if m.match.matches(san) {
		return true
	}
	if m.match.kind == 1 && strings.HasPrefix(san, "*.") {
		want := m.match.exact
		if i := strings.IndexByte(want, '.'); i > 0 {
			return strings.EqualFold(want[i:], san[1:])
		}
	}
	return false
}

// matchCert reports whether one SAN of cert matches m.
func (m *sanMatcher) matchCert(cert *x509.Certificate) bool {
	if m.kind == sanAny || m.kind == sanDNS {
		for _, d := range cert.DNSNames {
			if m.matchDNS(d) {
				return true
			}
		}
	}
	if m.kind == sanAny || m.kind == sanURI {
		for _, u := range cert.URIs {
			if m.match.matches(u.String()) {
				return true
			}
		}
	}
	if m.kind == sanAny || m.kind == sanIP {
		for _, ip := range cert.IPAddresses {
			if m.match.matches(ip.String()) {
				return true
			}
		}
	}
	if m.kind == sanAny || m.kind == sanEmail {
		for _, e := range cert.EmailAddresses {
			if m.match.matches(e) {
				return true
			}
		}
	}
	return false
}

// errSANMismatch: the peer's certificate matched none of the SAN matchers.
var errSANMismatch = errors.New("peer certificate SANs match none of the configured subject alt names")

// errNotSVID: a certificate with a SPIFFE ID breaks the X.509-SVID rules.
var errNotSVID = errors.New("peer certificate is not a valid X.509-SVID")

// checkSVID applies the X.509-SVID leaf rules to a certificate that
// carries a SPIFFE ID: exactly one URI SAN, and not a CA. A mesh identity
// must be unambiguous (a second URI could satisfy a SAN matcher the first
// does not) and a workload must not be able to sign others.
func checkSVID(c *x509.Certificate) error {
	spiffe := false
	for _, u := range c.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			spiffe = true
		}
	}
	switch {
	case !spiffe:
		return nil
	case len(c.URIs) != 1:
		return fmt.Errorf("%w: %d URI SANs (%s), want exactly one", errNotSVID, len(c.URIs), describeSANs(c))
	case c.IsCA:
		return fmt.Errorf("%w: it is a CA certificate", errNotSVID)
	}
	return nil
}

// errNoPeerCert: the peer presented no certificate.
var errNoPeerCert = errors.New("peer presented no certificate")

// verify checks a peer chain (leaf first) against roots and the SAN
// matchers.
func (v *validation) verify(chain []*x509.Certificate, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errNoPeerCert
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return err
	}
	if err := checkSVID(chain[0]); err != nil {
		return err
	}
	if len(v.sans) == 0 {
		return nil
	}
	for i := range v.sans {
		if v.sans[i].matchCert(chain[0]) {
			return nil
		}
	}
	return fmt.Errorf("%w (%s)", errSANMismatch, describeSANs(chain[0]))
}

func describeSANs(c *x509.Certificate) string {
	var parts []string
	for _, u := range c.URIs {
		parts = append(parts, "URI:"+u.String())
	}
	for _, d := range c.DNSNames {
		parts = append(parts, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		parts = append(parts, "IP:"+ip.String())
	}
	if len(parts) == 0 {
		return "no SANs"
	}
	return strings.Join(parts, ", ")
}
