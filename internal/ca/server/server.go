package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
)

// Defaults for Config's limits.
const (
	DefaultMaxConcurrent   = 32
	DefaultQueueTimeout    = time.Second
	DefaultMaxRequestBytes = 64 << 10
	DefaultHandshakeTime   = 10 * time.Second
	// DefaultMaxStreams bounds the concurrent streams (and handler
	// goroutines) of one connection; gRPC's own default is 2^32-1.
	DefaultMaxStreams = 100
	// Keepalive: a connection silent for DefaultKeepaliveTime is pinged
	// and closed when the ping is not answered within
	// DefaultKeepaliveTimeout; clients may ping every
	// DefaultKeepaliveMinTime at most.
	DefaultKeepaliveTime    = 30 * time.Second
	DefaultKeepaliveTimeout = 10 * time.Second
	DefaultKeepaliveMinTime = 15 * time.Second
)

// impersonatedIdentity is the request metadata key Istio's node agents use
// to ask for another workload's certificate. Trellis trusts no node
// account for that, so a request carrying it is refused, as Istio refuses
// it when CA_TRUSTED_NODE_ACCOUNTS is empty.
const impersonatedIdentity = "ImpersonatedIdentity"

// Config configures the CA service.
type Config struct {
	Authority *ca.Authority
	// Authenticators are tried in order; the first that proves an identity
	// wins. At least one is required.
	Authenticators []Authenticator
	// ServingDNSNames and ServingIPs are the SANs of the certificate the
	// service presents (at least one).
	ServingDNSNames []string
	ServingIPs      []net.IP
	// MaxConcurrent bounds requests being authenticated and signed at once;
	// a request waits at most QueueTimeout for a slot, then gets
	// ResourceExhausted.
	MaxConcurrent int
	QueueTimeout  time.Duration
	// MaxRequestBytes bounds a request message (gRPC refuses larger ones
	// with ResourceExhausted before decoding); MaxCSRBytes bounds the CSR.
	MaxRequestBytes int
	MaxCSRBytes     int
	Logger          *slog.Logger
	Now             func() time.Time
}

// Server implements istio.v1.auth.IstioCertificateService.
type Server struct {
	pb.UnimplementedIstioCertificateServiceServer
	cfg Config
	log *slog.Logger
	sem chan struct{}

	mu       sync.Mutex // guards the serving certificate
	cert     *tls.Certificate
	certRoot []byte // DER of the root the serving certificate was issued under
	renewAt  time.Time
}

// New checks cfg and returns the service. It does no I/O.
func New(cfg Config) (*Server, error) {
	if cfg.Authority == nil {
		return nil, errors.New("ca server: no authority")
	}
	if len(cfg.Authenticators) == 0 {
		return nil, errors.New("ca server: no authenticator")
	}
	if len(cfg.ServingDNSNames) == 0 && len(cfg.ServingIPs) == 0 {
		return nil, errors.New("ca server: no serving DNS name or IP")
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = DefaultQueueTimeout
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxCSRBytes <= 0 {
		cfg.MaxCSRBytes = ca.MaxCSRBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, cfg.MaxConcurrent)}, nil
}

// Register adds the service to a gRPC server built with ServerOptions.
func (s *Server) Register(gs *grpc.Server) { pb.RegisterIstioCertificateServiceServer(gs, s) }

// ServerOptions are the options of the gRPC server on the secure port: TLS
// with the serving certificate and an optional client certificate, the
// request size limit, a handshake deadline, a header limit, at most
// DefaultMaxStreams streams per connection, and keepalive (silent peers
// are closed; clients pinging faster than DefaultKeepaliveMinTime get
// GOAWAY too_many_pings).
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(s.TLSConfig())),
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes),
		grpc.ConnectionTimeout(DefaultHandshakeTime),
		grpc.MaxHeaderListSize(16 << 10),
		grpc.MaxConcurrentStreams(DefaultMaxStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: DefaultKeepaliveTime, Timeout: DefaultKeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: DefaultKeepaliveMinTime, PermitWithoutStream: true}),
	}
}

// TLSConfig is the server side of the secure port. Client certificates are
// requested but not verified by TLS: CertAuthenticator verifies them against
// the CA's current trust bundle, so a caller with an expired certificate
// can still fall back to a token.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: s.servingCertificate,
	}
}

// servingCertificate returns the serving certificate, issuing a new one at
// half its lifetime or when the CA issues under another root.
func (s *Server) servingCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	root := s.cfg.Authority.Issuer().Root.Raw
	if s.cert != nil && now.Before(s.renewAt) && bytes.Equal(root, s.certRoot) {
		return s.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serving certificate key: %w", err)
	}
	iss, err := s.cfg.Authority.IssueServing(&key.PublicKey, ca.Serving{DNSNames: s.cfg.ServingDNSNames, IPs: s.cfg.ServingIPs})
	if err != nil {
		s.log.Error("issuing the CA serving certificate", "err", err)
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, err
	}
	s.cert = &tls.Certificate{Certificate: iss.Chain[:len(iss.Chain)-1], PrivateKey: key, Leaf: iss.Cert}
	s.certRoot = root
	s.renewAt = iss.Cert.NotBefore.Add(iss.Cert.NotAfter.Sub(iss.Cert.NotBefore) / 2)
	s.log.Info("CA serving certificate issued", "dns", s.cfg.ServingDNSNames, "notAfter", iss.Cert.NotAfter)
	return s.cert, nil
}

// CreateCertificate authenticates the caller, signs the CSR's key for the
// proven identity only and returns [leaf, intermediates..., root].
func (s *Server) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer func() { <-s.sem }()

	creds := credentialsFrom(ctx)
	log := s.log.With("remote", addr(creds.RemoteAddr))
	if v := req.GetMetadata().GetFields()[impersonatedIdentity].GetStringValue(); v != "" {
		log.Warn("certificate request refused: impersonation is not allowed", "impersonated", v)
		return nil, status.Error(codes.Unauthenticated, "request impersonation authentication failure")
	}
	id, by, err := s.authenticate(ctx, creds)
	if err != nil {
		log.Warn("certificate request refused: authentication failed", "err", err)
		return nil, status.Error(codes.Unauthenticated, "request authenticate failure")
	}
	ttl, err := requestedTTL(req.GetValidityDuration())
	if err != nil {
		log.Warn("certificate request refused", "identity", id.String(), "err", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	iss, err := s.cfg.Authority.Issue(ca.Request{CSR: []byte(req.GetCsr()), Identity: id, TTL: ttl, MaxCSRBytes: s.cfg.MaxCSRBytes})
	if err != nil {
		var re *ca.RequestError
		if errors.As(err, &re) {
			log.Warn("certificate request refused", "identity", id.String(), "err", err)
			return nil, status.Errorf(codes.InvalidArgument, "CSR signing error (%v)", re)
		}
		log.Error("certificate signing failed", "identity", id.String(), "err", err)
		return nil, status.Error(codes.Internal, "CSR signing error")
	}
	log.Info("certificate issued", "identity", id.String(), "authenticator", by,
		"serial", iss.Cert.SerialNumber.Text(16), "notAfter", iss.Cert.NotAfter)
	return &pb.IstioCertificateResponse{CertChain: iss.PEMChain()}, nil
}

func (s *Server) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-t.C:
		return status.Error(codes.ResourceExhausted, "too many concurrent certificate requests; retry later")
	}
}

// authenticate tries each authenticator in order.
func (s *Server) authenticate(ctx context.Context, c Credentials) (ca.Identity, string, error) {
	var errs []error
	for _, a := range s.cfg.Authenticators {
		id, err := a.Authenticate(ctx, c)
		if err == nil {
			return id, a.Name(), nil
		}
		if !errors.Is(err, ErrNoCredential) {
			errs = append(errs, fmt.Errorf("%s: %w", a.Name(), err))
		}
	}
	if len(errs) == 0 {
		return ca.Identity{}, "", errors.New("no credential presented")
	}
	return ca.Identity{}, "", errors.Join(errs...)
}

// requestedTTL converts validity_duration (seconds). Values that overflow a
// time.Duration are reported as too large rather than wrapping.
func requestedTTL(secs int64) (time.Duration, error) {
	if secs > math.MaxInt64/int64(time.Second) {
		return 0, fmt.Errorf("ttl: requested %d seconds is above the maximum", secs)
	}
	return time.Duration(secs) * time.Second, nil
}

// credentialsFrom reads the peer's TLS chain and the bearer token.
func credentialsFrom(ctx context.Context) Credentials {
	var c Credentials
	if p, ok := peer.FromContext(ctx); ok {
		c.RemoteAddr = p.Addr
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			c.PeerCertificates = ti.State.PeerCertificates
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) == 1 {
			if scheme, tok, ok := strings.Cut(v[0], " "); ok && strings.EqualFold(scheme, "Bearer") {
				c.BearerToken = strings.TrimSpace(tok)
			}
		}
	}
	return c
}

func addr(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Roots returns the trust bundle clients need to verify the service (and
// every workload certificate).
func (s *Server) Roots() []*x509.Certificate { return s.cfg.Authority.Roots().Certs() }
