package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube/inject"
)

// DefaultAddress is Istio's webhook port.
const DefaultAddress = ":15017"

// Paths the API server calls.
const (
	InjectPath   = "/inject"
	ValidatePath = "/validate"
)

// Config configures a Server.
type Config struct {
	// Address to listen on (default ":15017").
	Address string
	// Injector serves /inject; nil leaves the path unserved.
	Injector *inject.Injector
	// Schemas are the kinds /validate checks (default schema.Istio()).
	Schemas *schema.Set
	// Certs provides the serving certificate (required).
	Certs *Certs
	// ReadTimeout bounds reading one request, headers and body (default
	// DefaultReadTimeout): a client trickling a body cannot hold a
	// connection and its buffer for longer.
	ReadTimeout time.Duration
	Logger      *slog.Logger
}

// DefaultReadTimeout is the API server's longest webhook timeout (30s):
// a review that takes longer to arrive is no longer awaited.
const DefaultReadTimeout = 30 * time.Second

// Server is the admission webhook server: HTTPS with the certificate from
// Certs, /inject and /validate.
type Server struct {
	cfg     Config
	handler http.Handler
	ready   chan struct{}
	addr    net.Addr
}

// New checks cfg. It does no I/O.
func New(cfg Config) (*Server, error) {
	if cfg.Certs == nil {
		return nil, errors.New("webhook server: no certificates")
	}
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Schemas == nil {
		s := schema.Istio()
		cfg.Schemas = &s
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	mux := http.NewServeMux()
	if cfg.Injector != nil {
		mux.Handle(InjectPath, serveReview(cfg.Logger, injectPod(cfg.Injector, cfg.Logger.With("component", "inject"))))
	}
	mux.Handle(ValidatePath, serveReview(cfg.Logger, validateConfig(*cfg.Schemas)))
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return &Server{cfg: cfg, handler: mux, ready: make(chan struct{})}, nil
}

// Handler is the server's HTTP handler, without TLS (for tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the listening address once Run has started listening (it
// blocks until then or until ctx ends).
func (s *Server) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case <-s.ready:
		return s.addr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run serves until ctx is done, then shuts down within 5 seconds.
func (s *Server) Run(ctx context.Context) error {
	// Issue the first certificate before accepting: a failure here is a
	// configuration problem worth failing on.
	if _, err := s.cfg.Certs.Current(); err != nil {
		return fmt.Errorf("webhook server: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("webhook server: %w", err)
	}
	s.addr = ln.Addr()
	close(s.ready)
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.cfg.Certs.GetCertificate},
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	s.cfg.Logger.Info("webhook server listening", "address", s.addr.String())
	select {
	case err := <-errc:
		return fmt.Errorf("webhook server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}
