package tlssock

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
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

// errKeyUsage: the peer's certificate does not allow the use its role
// in the handshake needs.
var errKeyUsage = errors.New("peer certificate key usage does not allow this use")

// checkSVID applies the X.509-SVID leaf rules to a certificate that
// carries a SPIFFE ID: exactly one URI SAN, which is a well-formed SPIFFE
// ID (checkSPIFFEID); not a CA; key usage with digitalSignature and
// without keyCertSign or cRLSign. A mesh identity must be unambiguous (a
// second URI could satisfy a SAN matcher the first does not, an escaped
// byte reads differently to different parsers) and a workload must not be
// able to sign others.
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
	case c.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return fmt.Errorf("%w: key usage lacks digitalSignature", errNotSVID)
	case c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0:
		return fmt.Errorf("%w: key usage has keyCertSign or cRLSign", errNotSVID)
	}
	if err := checkSPIFFEID(c.URIs[0]); err != nil {
		return fmt.Errorf("%w: URI SAN %q: %w", errNotSVID, c.URIs[0].String(), err)
	}
	return nil
}

// checkSPIFFEID checks the SPIFFE ID grammar: spiffe://<trust domain>/<path>
// with a trust domain of lower-case letters, digits, '.', '-' and '_', a
// non-empty path of non-empty segments of letters, digits, '.', '-' and
// '_' other than "." and "..", and no port, user info, query, fragment or
// percent-encoding. A NUL or any other byte outside the grammar, escaped
// or not, is refused.
func checkSPIFFEID(u *url.URL) error {
	switch {
	case u.Scheme != "spiffe":
		return errors.New("scheme is not spiffe")
	case u.Opaque != "" || u.Host == "":
		return errors.New("no trust domain")
	case u.User != nil:
		return errors.New("user info is not allowed")
	case u.Port() != "" || strings.Contains(u.Host, ":"):
		return errors.New("a port is not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("a query is not allowed")
	case u.Fragment != "" || u.RawFragment != "":
		return errors.New("a fragment is not allowed")
	case u.RawPath != "" || strings.Contains(u.String(), "%"):
		return errors.New("percent-encoding is not allowed")
	}
	for i := 0; i < len(u.Host); i++ {
		if b := u.Host[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_') {
			return fmt.Errorf("trust domain: byte %q is not allowed", b)
		}
	}
	path, ok := strings.CutPrefix(u.Path, "/")
	if !ok || path == "" {
		return errors.New("the path is empty")
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path segment %q is not allowed", seg)
		}
		for i := 0; i < len(seg); i++ {
			if b := seg[i]; !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_') {
				return fmt.Errorf("path: byte %q is not allowed", b)
			}
		}
	}
	return nil
}

// checkKeyUsage checks the leaf's key usage for its role: need is the
// bit the handshake uses the key for (digitalSignature to sign, or
// keyEncipherment for RSA key exchange). A certificate without the key
// usage extension may be used for anything (RFC 5280).
func checkKeyUsage(c *x509.Certificate, need x509.KeyUsage) error {
	if c.KeyUsage != 0 && c.KeyUsage&need == 0 {
		return fmt.Errorf("%w: key usage %s lacks %s", errKeyUsage, keyUsageNames(c.KeyUsage), keyUsageNames(need))
	}
	return nil
}

func keyUsageNames(ku x509.KeyUsage) string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
		"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "|")
}

// errNoPeerCert: the peer presented no certificate.
var errNoPeerCert = errors.New("peer presented no certificate")

// peer is what a handshake needs the peer's certificate for.
type peer struct {
	// eku is the extended key usage the chain must allow: clientAuth for a
	// client's certificate, serverAuth for a server's.
	eku x509.ExtKeyUsage
	// ku is the key usage bit the leaf must have when it has the
	// extension.
	ku x509.KeyUsage
}

// clientPeer is a client verified by a server: it signs CertificateVerify.
var clientPeer = peer{eku: x509.ExtKeyUsageClientAuth, ku: x509.KeyUsageDigitalSignature}

// serverPeer is the server of a connection state: it signs the handshake,
// or decrypts the premaster secret under RSA key exchange (TLS 1.2 and
// below with a TLS_RSA_* suite).
func serverPeer(cs *tls.ConnectionState) peer {
	p := peer{eku: x509.ExtKeyUsageServerAuth, ku: x509.KeyUsageDigitalSignature}
	if cs.Version < tls.VersionTLS13 && rsaKeyExchange(cs.CipherSuite) {
		p.ku = x509.KeyUsageKeyEncipherment
	}
	return p
}

func rsaKeyExchange(suite uint16) bool {
	switch suite {
	case tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_RC4_128_SHA:
		return true
	}
	return false
}

// verify checks a peer chain (leaf first) against roots, the extended key
// usage and key usage of the peer's role, the X.509-SVID rules and the SAN
// matchers.
func (v *validation) verify(chain []*x509.Certificate, roots *x509.CertPool, p peer) error {
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
		KeyUsages:     []x509.ExtKeyUsage{p.eku},
	}); err != nil {
		return err
	}
	if err := checkKeyUsage(chain[0], p.ku); err != nil {
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
