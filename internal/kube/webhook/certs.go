package webhook

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
)

// Authority issues the webhook's serving certificate; *ca.Authority (the
// mesh CA) is one.
type Authority interface {
	IssueServing(pub crypto.PublicKey, s ca.Serving) (*ca.Issued, error)
	// Roots are the certificates the API server must trust: the caBundle.
	Roots() ca.Bundle
}

// CertsConfig configures Certs.
type CertsConfig struct {
	Authority Authority
	// DNSNames and IPs go into the certificate: the Service names
	// <service>.<namespace>.svc (ServiceDNSNames), or, in tests where the
	// API server calls a URL, 127.0.0.1.
	DNSNames []string
	IPs      []net.IP
	// TTL of each certificate (default 24h); a new one is issued once half
	// of it has passed.
	TTL    time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// ServiceDNSNames are the names the API server uses to reach a webhook
// behind Service name in namespace ns.
func ServiceDNSNames(name, ns string) []string {
	return []string{name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local", name + "." + ns, name}
}

// Certs keeps the webhook's serving certificate: issued by the Authority on
// first use and again once half its lifetime has passed (or when the
// Authority's roots change), so that a certificate never expires while
// served. It is safe for concurrent use.
type Certs struct {
	cfg CertsConfig

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
	roots   []byte // the roots PEM the current certificate was issued under
}

// NewCerts checks cfg. It does no I/O and issues nothing yet.
func NewCerts(cfg CertsConfig) (*Certs, error) {
	if cfg.Authority == nil {
		return nil, errors.New("webhook certificates: no authority")
	}
	if len(cfg.DNSNames) == 0 && len(cfg.IPs) == 0 {
		return nil, errors.New("webhook certificates: no DNS name or IP")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Certs{cfg: cfg}, nil
}

// GetCertificate is tls.Config.GetCertificate: the current certificate,
// renewed when due. When renewal fails the previous certificate is served
// (and the failure logged) until it expires.
func (c *Certs) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Current()
}

// Current returns the certificate to serve, issuing a new one when due.
func (c *Certs) Current() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	roots := c.cfg.Authority.Roots().PEM()
	if c.cert != nil && now.Before(c.renewAt) && string(roots) == string(c.roots) {
		return c.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return c.fallback(now, fmt.Errorf("webhook serving key: %w", err))
	}
	iss, err := c.cfg.Authority.IssueServing(&key.PublicKey, ca.Serving{DNSNames: c.cfg.DNSNames, IPs: c.cfg.IPs, TTL: c.cfg.TTL})
	if err != nil {
		return c.fallback(now, fmt.Errorf("issuing the webhook serving certificate: %w", err))
	}
	chain := iss.Chain
	if len(chain) > 1 {
		chain = chain[:len(chain)-1] // the root is the caBundle's job
	}
	c.cert = &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: iss.Cert}
	c.roots = roots
	c.renewAt = iss.Cert.NotBefore.Add(iss.Cert.NotAfter.Sub(iss.Cert.NotBefore) / 2)
	c.cfg.Logger.Info("webhook serving certificate issued", "dns", c.cfg.DNSNames, "ips", c.cfg.IPs, "notAfter", iss.Cert.NotAfter)
	return c.cert, nil
}

func (c *Certs) fallback(now time.Time, err error) (*tls.Certificate, error) {
	if c.cert != nil && now.Before(c.cert.Leaf.NotAfter) {
		c.cfg.Logger.Error("renewing the webhook serving certificate; serving the previous one", "err", err)
		return c.cert, nil
	}
	return nil, err
}

// CABundle is the PEM the webhook configurations' caBundle must hold: every
// root the serving certificate may chain to.
func (c *Certs) CABundle() []byte { return c.cfg.Authority.Roots().PEM() }
