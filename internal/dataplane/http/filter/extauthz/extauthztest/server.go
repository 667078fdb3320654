// Package extauthztest is a real external authorization service for
// tests, in both of Envoy's flavours: an HTTP service (any request; 200
// allows) and an envoy.service.auth.v3 Authorization gRPC service. Both
// decide the same way and record every check they receive:
//
//   - header x-ext-authz: allow → allowed, with x-authz-user: alice for
//     the upstream;
//   - header x-ext-authz: slow → waits for Release (for timeouts);
//   - otherwise denied: 403 with header x-authz-reason: denied-by-test
//     and body "denied by ext authz".
package extauthztest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// Decision headers and values.
const (
	Header     = "x-ext-authz"
	Allow      = "allow"
	Slow       = "slow"
	UserHeader = "x-authz-user"
	User       = "alice"
	ReasonHdr  = "x-authz-reason"
	Reason     = "denied-by-test"
	DenyBody   = "denied by ext authz"
)

// Check is one check the service received: method, path (for the HTTP
// flavour, the check request's own path), and headers by lower-case name
// with each value as received.
type Check struct {
	Method, Path string
	Header       map[string][]string
	Body         string
}

// Server records checks; it serves HTTP (ServeHTTP) and gRPC (Check).
type Server struct {
	authv3.UnimplementedAuthorizationServer
	mu      sync.Mutex
	checks  []Check
	release chan struct{}
}

// Start runs an HTTP and a gRPC server on loopback and stops them at the
// end of the test.
func Start(t *testing.T) (s *Server, httpAddr, grpcAddr string) {
	t.Helper()
	s = &Server{release: make(chan struct{})}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, s)
	var wg sync.WaitGroup
	wg.Go(func() { _ = hs.Serve(hl) })
	wg.Go(func() { _ = gs.Serve(gl) })
	t.Cleanup(func() {
		s.Release()
		_ = hs.Close()
		gs.Stop()
		wg.Wait()
	})
	return s, hl.Addr().String(), gl.Addr().String()
}

// Release lets slow checks finish.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

// Checks returns the checks received so far.
func (s *Server) Checks() []Check {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Check(nil), s.checks...)
}

func (s *Server) record(c Check) {
	s.mu.Lock()
	s.checks = append(s.checks, c)
	s.mu.Unlock()
}

// decide returns whether the values of x-ext-authz allow, waiting first
// when they ask to be slow.
func (s *Server) decide(ctx context.Context, values []string) bool {
	v := strings.Join(values, ",")
	if v == Slow {
		select {
		case <-s.release:
		case <-ctx.Done():
		}
	}
	return v == Allow
}

// ServeHTTP is the HTTP flavour.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := Check{Method: r.Method, Path: r.URL.RequestURI(), Header: map[string][]string{}}
	for k, vs := range r.Header {
		c.Header[strings.ToLower(k)] = vs
	}
	c.Header["host"] = []string{r.Host}
	buf := new(strings.Builder)
	_, _ = bufCopy(buf, r)
	c.Body = buf.String()
	s.record(c)
	if s.decide(r.Context(), r.Header.Values(Header)) {
		w.Header().Set(UserHeader, User)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set(ReasonHdr, Reason)
	w.Header().Set("Content-Type", "text/plain; charset=test")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(DenyBody))
}

func bufCopy(b *strings.Builder, r *http.Request) (int64, error) {
	if r.Body == nil {
		return 0, nil
	}
	var n int64
	p := make([]byte, 4096)
	for {
		m, err := r.Body.Read(p)
		b.Write(p[:m])
		n += int64(m)
		if err != nil {
			return n, nil
		}
	}
}

// Check is the gRPC flavour.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	c := Check{Method: h.GetMethod(), Path: h.GetPath(), Header: map[string][]string{}, Body: h.GetBody()}
	for k, v := range h.GetHeaders() {
		c.Header[k] = []string{v}
	}
	s.record(c)
	var values []string
	if v, ok := h.GetHeaders()[Header]; ok {
		values = []string{v}
	}
	if s.decide(ctx, values) {
		return &authv3.CheckResponse{
			Status: &status.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: UserHeader, Value: User}}},
			}},
		}, nil
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(code.Code_PERMISSION_DENIED)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: ReasonHdr, Value: Reason}}},
			Body:    DenyBody,
		}},
	}, nil
}
