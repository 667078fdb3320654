package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

// Defaults for Config's timings.
const (
	DefaultRequestTimeout    = 10 * time.Second
	DefaultMinBackoff        = time.Second
	DefaultMaxBackoff        = 5 * time.Minute
	DefaultRootCheckInterval = 10 * time.Second
	// RenewJitter is the fraction by which the renewal time (half of the
	// certificate's remaining lifetime at receipt) is moved either way.
	RenewJitter = 0.1
	// maxFileBytes bounds the root and token files.
	maxFileBytes = 1 << 20
)

// Config configures the identity manager.
type Config struct {
	// CAAddress is the CA's gRPC address, host:port (Istio's CA_ADDR).
	// Required.
	CAAddress string
	// ServerName is the name the CA's serving certificate must carry
	// (default: the host of CAAddress).
	ServerName string
	// RootCertFile is the PEM bundle that authenticates the CA and seeds
	// the mesh trust bundle (Istio's ./var/run/secrets/istio/root-cert.pem).
	// It is re-read when it changes. Required.
	RootCertFile string
	// TokenFile holds the local-mode bootstrap token presented as
	// "authorization: Bearer" when there is no valid certificate to renew
	// with. Re-read on every use. Required.
	TokenFile string
	// TrustDomain, Namespace and ServiceAccount make the requested
	// identity spiffe://<td>/ns/<ns>/sa/<sa>. Required.
	TrustDomain    string
	Namespace      string
	ServiceAccount string
	// TTL is the requested certificate lifetime (0: the CA's default).
	TTL time.Duration
	// RequestTimeout bounds one CreateCertificate call, dial included.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential back-off between
	// failed requests.
	MinBackoff, MaxBackoff time.Duration
	// RootCheckInterval is how often RootCertFile is checked for changes.
	RootCheckInterval time.Duration
	// Metrics receives issuance events (nil: none).
	Metrics Metrics
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Manager obtains and renews the workload certificate. Certificate, Roots,
// Ready and Wait are safe for concurrent use; Run is the only writer.
type Manager struct {
	cfg Config
	log *slog.Logger
	id  *url.URL

	cur   atomic.Pointer[material]
	ready chan struct{} // closed when the first certificate arrives
	once  sync.Once
}

// material is one immutable generation of the workload's identity.
type material struct {
	cert      *tls.Certificate // nil until the first certificate
	notAfter  time.Time
	roots     []*x509.Certificate // the trust bundle, deduplicated
	pool      *x509.CertPool
	fileRoots []*x509.Certificate // the last good RootCertFile content
	caRoot    *x509.Certificate   // last element of the last CA response
}

// New checks cfg; it does no I/O.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.CAAddress == "":
		return nil, errors.New("identity: CA address is required")
	case cfg.RootCertFile == "":
		return nil, errors.New("identity: root certificate file is required (it authenticates the CA)")
	case cfg.TokenFile == "":
		return nil, errors.New("identity: bootstrap token file is required (it proves the identity for the first certificate)")
	}
	host, _, err := net.SplitHostPort(cfg.CAAddress)
	if err != nil {
		return nil, fmt.Errorf("identity: CA address %q: %w", cfg.CAAddress, err)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	id, err := SPIFFEID(cfg.TrustDomain, cfg.Namespace, cfg.ServiceAccount)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("identity: TTL %s is negative", cfg.TTL)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.RootCheckInterval <= 0 {
		cfg.RootCheckInterval = DefaultRootCheckInterval
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("identity", id.String()), id: id, ready: make(chan struct{})}
	m.cur.Store(&material{pool: x509.NewCertPool()})
	return m, nil
}

// SPIFFEID returns spiffe://<td>/ns/<ns>/sa/<sa> after checking each part
// is a DNS-style name (lower-case letters, digits, '-' and, in the trust
// domain, '.').
func SPIFFEID(trustDomain, namespace, serviceAccount string) (*url.URL, error) {
	for _, p := range []struct{ field, v, extra string }{
		{"trust domain", trustDomain, "."},
		{"namespace", namespace, ""},
		{"service account", serviceAccount, "."},
	} {
		if p.v == "" {
			return nil, fmt.Errorf("%s is required", p.field)
		}
		if len(p.v) > 253 {
			return nil, fmt.Errorf("%s %q: longer than 253 characters", p.field, p.v)
		}
		for _, r := range p.v {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || strings.ContainsRune(p.extra, r)) {
				return nil, fmt.Errorf("%s %q: character %q not allowed (lower-case letters, digits, '-'%s)", p.field, p.v, r, map[bool]string{true: ", '.'"}[p.extra != ""])
			}
		}
	}
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/ns/" + namespace + "/sa/" + serviceAccount}, nil
}

// ID is the SPIFFE ID the manager requests.
func (m *Manager) ID() string { return m.id.String() }

// Certificate returns the current chain and key (the SDS "default"
// secret). Before the first certificate, and once the current one expired
// without a renewal, the error wraps secrets.ErrNotReady.
func (m *Manager) Certificate() (*tls.Certificate, error) {
	mat := m.cur.Load()
	if mat.cert == nil {
		return nil, fmt.Errorf("%w: no certificate for %s yet", secrets.ErrNotReady, m.id)
	}
	if !m.cfg.Now().Before(mat.notAfter) {
		return nil, fmt.Errorf("%w: the certificate for %s expired at %s and was not renewed", secrets.ErrNotReady, m.id, mat.notAfter.UTC().Format(time.RFC3339))
	}
	return mat.cert, nil
}

// Roots returns the mesh trust bundle (the SDS "ROOTCA" secret): the roots
// of RootCertFile and the root of the last CA response. Empty before
// either was read, which wraps secrets.ErrNotReady.
func (m *Manager) Roots() (*x509.CertPool, error) {
	mat := m.cur.Load()
	if len(mat.roots) == 0 {
		return nil, fmt.Errorf("%w: no trust bundle yet (%s not read)", secrets.ErrNotReady, m.cfg.RootCertFile)
	}
	return mat.pool, nil
}

// RootCerts returns a copy of the trust bundle's certificates, the CA's
// current root first.
func (m *Manager) RootCerts() []*x509.Certificate {
	return append([]*x509.Certificate(nil), m.cur.Load().roots...)
}

// Ready reports whether a valid certificate and a trust bundle are
// available.
func (m *Manager) Ready() bool {
	if _, err := m.Certificate(); err != nil {
		return false
	}
	_, err := m.Roots()
	return err == nil
}

// Wait blocks until the first certificate has arrived or ctx ends.
// (Once a certificate arrived, an expired one is reported by Certificate,
// not by Wait: the manager is renewing it.)
func (m *Manager) Wait(ctx context.Context) error {
	select {
	case <-m.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the certificate of %s: %w", m.id, ctx.Err())
	}
}

// publish swaps in the next generation and derives the bundle.
func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, l := range list {
		if c != nil && l.Equal(c) {
			return true
		}
	}
	return false
}

func (m *Manager) publish(next *material) {
	roots := make([]*x509.Certificate, 0, len(next.fileRoots)+1)
	seen := map[string]bool{}
	add := func(c *x509.Certificate) {
		if c != nil && !seen[string(c.Raw)] {
			seen[string(c.Raw)] = true
			roots = append(roots, c)
		}
	}
	// The CA's root was trusted when the response was accepted; once the
	// root file (the operator's bundle) stops listing it (root rotation's
	// Retire step), it is dropped at once rather than at the next renewal.
	if len(next.fileRoots) == 0 || containsCert(next.fileRoots, next.caRoot) {
		add(next.caRoot)
	}
	for _, c := range next.fileRoots {
		add(c)
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	next.roots, next.pool = roots, pool
	m.cur.Store(next)
	if next.cert != nil {
		m.once.Do(func() { close(m.ready) })
	}
}
