package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Identity is a workload identity: a Kubernetes-style service account in a
// namespace, within a trust domain. Its SPIFFE form is
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// String returns the SPIFFE ID.
func (id Identity) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// Validate checks every part: the trust domain as SPIFFE allows it, the
// namespace as a DNS-1123 label and the service account as a DNS-1123
// subdomain (what Kubernetes accepts for those names).
func (id Identity) Validate() error {
	if err := ValidateTrustDomain(id.TrustDomain); err != nil {
		return err
	}
	if err := validateLabel(id.Namespace); err != nil {
		return fmt.Errorf("namespace %q: %w", id.Namespace, err)
	}
	if err := ValidateServiceAccount(id.ServiceAccount); err != nil {
		return err
	}
	return nil
}

// ValidateTrustDomain checks a trust domain name (lower-case letters,
// digits, '.', '-', '_'; at most 255 bytes).
func ValidateTrustDomain(td string) error {
	if td == "" {
		return errors.New("trust domain: empty")
	}
	if len(td) > 255 {
		return fmt.Errorf("trust domain %q: longer than 255 bytes", td)
	}
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil || t.Name() != td {
		return fmt.Errorf("trust domain %q: only lower-case letters, digits, '.', '-' and '_' are allowed", td)
	}
	return nil
}

// ValidateServiceAccount checks a service account name (a DNS-1123
// subdomain: dot-separated labels, at most 253 bytes).
func ValidateServiceAccount(sa string) error {
	if sa == "" {
		return errors.New("service account: empty")
	}
	if len(sa) > 253 {
		return fmt.Errorf("service account %q: longer than 253 bytes", sa)
	}
	for label := range strings.SplitSeq(sa, ".") {
		if err := validateLabel(label); err != nil {
			return fmt.Errorf("service account %q: %w", sa, err)
		}
	}
	return nil
}

// ValidateNamespace checks a namespace name (a DNS-1123 label).
func ValidateNamespace(ns string) error {
	if err := validateLabel(ns); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	return nil
}

// validateLabel checks a DNS-1123 label: 1-63 of [a-z0-9-], starting and
// ending with a letter or digit.
func validateLabel(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 63 {
		return errors.New("longer than 63 bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return fmt.Errorf("byte %d (%q) not allowed: lower-case letters, digits and inner '-' only", i, c)
		}
	}
	return nil
}

// ParseIdentity parses spiffe://<td>/ns/<ns>/sa/<sa>. Anything else
// (another path shape, a query, a port, upper case, escapes) is an error.
func ParseIdentity(s string) (Identity, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	if id.String() != s {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: not in canonical form", s)
	}
	seg := strings.Split(id.Path(), "/")
	if len(seg) != 5 || seg[0] != "" || seg[1] != "ns" || seg[3] != "sa" {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: path is not /ns/<namespace>/sa/<service-account>", s)
	}
	out := Identity{TrustDomain: id.TrustDomain().Name(), Namespace: seg[2], ServiceAccount: seg[4]}
	if err := out.Validate(); err != nil {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	return out, nil
}

// IdentityFromCert returns the identity of an X.509 SVID: a certificate
// that is not a CA and carries exactly one URI SAN, a SPIFFE ID of the
// /ns/<ns>/sa/<sa> form. It does not verify the chain; callers verify first.
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	if c.IsCA {
		return Identity{}, errors.New("certificate is a CA (basic constraints CA:TRUE)")
	}
	if len(c.URIs) != 1 {
		return Identity{}, fmt.Errorf("certificate has %d URI SANs, want exactly one SPIFFE ID", len(c.URIs))
	}
	return ParseIdentity(c.URIs[0].String())
}

func parseURI(s string) ([]*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("identity %q: %w", s, err)
	}
	return []*url.URL{u}, nil
}
