package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Service is one running Bookinfo role: an http.Handler plus the client it
// calls other services with.
type Service struct {
	cfg     Config
	handler http.Handler
	up      *upstream // nil for roles that call nobody
	logger  *slog.Logger
}

// New builds the service cfg describes. It does no I/O.
func New(cfg Config, logger *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		return nil, errors.New("bookinfo: nil logger")
	}
	logger = logger.With("service", string(cfg.Role), "version", cfg.Version)
	s := &Service{cfg: cfg, logger: logger}
	switch cfg.Role {
	case Details:
		s.handler = detailsHandler()
	case Ratings:
		s.handler = ratingsHandler(&ratingsStore{})
	case Reviews:
		r := newReviews(cfg, logger)
		s.handler, s.up = r.handler(), r.up
	case ProductPage:
		p, err := newProductPage(cfg, logger)
		if err != nil {
			return nil, err
		}
		s.handler, s.up = p.handler(), p.up
	}
	return s, nil
}

// ServeHTTP serves one request and logs it at debug level.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.handler.ServeHTTP(rec, r)
	s.logger.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
		"end_user", r.Header.Get("end-user"), "duration", time.Since(start))
}

// Close releases idle upstream connections.
func (s *Service) Close() {
	if s.up != nil {
		s.up.close()
	}
}

// Run listens on the configured address and serves until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("%s: listening on %s: %w", s.cfg.Role, s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down gracefully (in-
// flight requests get 5 s) and closes ln.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.logger.Info("serving", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("%s: serving on %s: %w", s.cfg.Role, ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-errc // http.ErrServerClosed
	s.Close()
	if err != nil {
		return fmt.Errorf("%s: shutting down: %w", s.cfg.Role, err)
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// writeJSON writes v as a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeRawJSON(w, status, b)
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// productID reads the {id} path value; a non-numeric one is answered with
// 400 and ok false.
func productID(w http.ResponseWriter, r *http.Request) (id int, ok bool) {
	raw := r.PathValue("id")
	id, err := strconv.Atoi(raw)
	if err != nil || id < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": fmt.Sprintf("product id %q: please provide a numeric product id", raw)})
		return 0, false
	}
	return id, true
}
