package extauthz_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
	rbacnet "github.com/trellismesh/trellis/internal/dataplane/rbac/network"
	"github.com/trellismesh/trellis/internal/dataplane/tcp/extauthz"
)

const cluster = "outbound|9000||ext-authz.foo.svc.cluster.local"

// authzServer is a real Authorization service: it allows connections
// from port 1111 of any address, denies the others, and waits for
// release when the source port is 3333; it records every request.
type authzServer struct {
	authv3.UnimplementedAuthorizationServer
	mu       sync.Mutex
	requests []*authv3.CheckRequest
	release  chan struct{}
}

func (s *authzServer) Check(ctx context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	switch r.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetPortValue() {
	case 1111:
		md, _ := structpb.NewStruct(map[string]any{"user": "alice"})
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_OK)}, DynamicMetadata: md}, nil
	case 3333:
		select {
		case <-s.release:
		case <-ctx.Done():
			// The caller's deadline: an error either way (answering
			// "denied" here could race the client's own deadline).
			return nil, ctx.Err()
		}
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_PERMISSION_DENIED)}}, nil
}

func (s *authzServer) Requests() []*authv3.CheckRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*authv3.CheckRequest(nil), s.requests...)
}

func startServer(t *testing.T) (*authzServer, string) {
	t.Helper()
	s := &authzServer{release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, s)
	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(ln) })
	t.Cleanup(func() {
		close(s.release)
		gs.Stop()
		wg.Wait()
	})
	return s, ln.Addr().String()
}

// dialer sends every cluster to one address.
type dialer string

func (d dialer) Dial(ctx context.Context, _ string, _ *listener.Conn) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", string(d))
}

func filterOf(t *testing.T, m proto.Message, name string) *listenerv3.Filter {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

// config is Istio's network ext_authz for a gRPC provider.
func config(timeout time.Duration, failOpen bool) *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		StatPrefix: "tcp.",
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: cluster, Authority: strings.ReplaceAll(cluster, "|", "_."),
			}},
			Timeout: durationpb.New(timeout),
		},
		FailureModeAllow:    failOpen,
		TransportApiVersion: corev3.ApiVersion_V3,
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{
			Filter: "envoy.filters.network.rbac",
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "istio_ext_authz_shadow_effective_policy_id"}}},
			Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "istio-ext-authz"}}}},
		},
	}
}

// shadowRBAC marks connections to port 7000 for the ext_authz filter, as
// Istio's CUSTOM translation does.
func shadowRBAC(t *testing.T) *listenerv3.Filter {
	return filterOf(t, &rbactcpv3.RBAC{
		StatPrefix: "tcp.", ShadowRulesStatPrefix: "istio_ext_authz_",
		ShadowRules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: map[string]*rbacconfigv3.Policy{
			"istio-ext-authz-ns[foo]-policy[tcp]-rule[0]": {
				Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 7000}}},
				Principals:  []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
			},
		}},
	}, "envoy.filters.network.rbac")
}

// next records that the chain went on, with the metadata it saw.
type next struct {
	served bool
	md     rbac.Metadata
}

func (n *next) Serve(ctx context.Context, _ *listener.Conn) {
	n.served, n.md = true, rbac.MetadataFromContext(ctx)
}

// chain builds shadow RBAC → ext_authz → n.
func chain(t *testing.T, f extauthz.Filters, cfg *extauthzv3.ExtAuthz, n *next) listener.ConnHandler {
	t.Helper()
	ea, err := f.Build(filterOf(t, cfg, "envoy.filters.network.ext_authz"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ea.(interface{ Close() error }).Close() })
	rb, err := rbacnet.Filters{Stats: f.Stats}.Build(shadowRBAC(t))
	if err != nil {
		t.Fatal(err)
	}
	return rb.(listener.Wrapper).Wrap(ea.(listener.Wrapper).Wrap(n))
}

func conn(t *testing.T, srcPort, dstPort uint16, identity string) *listener.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &listener.Conn{Conn: a, Listener: "virtualInbound",
		Source:      netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), srcPort),
		Destination: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), dstPort),
		MutualTLS:   identity != "", PeerIdentity: identity}
}

func TestServe(t *testing.T) {
	srv, addr := startServer(t)
	stats := &rbac.Counters{}
	f := extauthz.Filters{Upstream: dialer(addr), Stats: stats}
	for _, tc := range []struct {
		name     string
		src, dst uint16
		identity string
		want     bool
		checked  bool
	}{
		{"allowed", 1111, 7000, "spiffe://cluster.local/ns/foo/sa/client", true, true},
		{"denied", 2222, 7000, "", false, true},
		{"not selected by the CUSTOM rule", 2222, 7001, "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.Requests())
			n := &next{}
			chain(t, f, config(2*time.Second, false), n).Serve(context.Background(), conn(t, tc.src, tc.dst, tc.identity))
			if n.served != tc.want {
				t.Fatalf("served=%v, want %v", n.served, tc.want)
			}
			reqs := srv.Requests()[before:]
			if got := len(reqs) == 1; got != tc.checked || len(reqs) > 1 {
				t.Fatalf("%d checks, want checked=%v", len(reqs), tc.checked)
			}
			if !tc.checked {
				return
			}
			a := reqs[0].GetAttributes()
			src, dst := a.GetSource().GetAddress().GetSocketAddress(), a.GetDestination().GetAddress().GetSocketAddress()
			if src.GetAddress() != "10.1.2.3" || src.GetPortValue() != uint32(tc.src) || dst.GetAddress() != "10.0.0.9" || dst.GetPortValue() != uint32(tc.dst) {
				t.Errorf("check addresses %v → %v", src, dst)
			}
			if a.GetSource().GetPrincipal() != tc.identity {
				t.Errorf("source principal %q, want %q", a.GetSource().GetPrincipal(), tc.identity)
			}
			if tc.want && n.md[extauthz.MetadataNamespace]["user"] != "alice" {
				t.Errorf("metadata after OK: %v", n.md)
			}
		})
	}
	for name, want := range map[string]uint64{
		"ext_authz.tcp.total": 2, "ext_authz.tcp.ok": 1, "ext_authz.tcp.denied": 1, "ext_authz.tcp.cx_closed": 1,
		"ext_authz.tcp.disabled": 1, "ext_authz.tcp.error": 0,
		"tcp.rbac.istio_ext_authz_.shadow_denied": 2, "tcp.rbac.istio_ext_authz_.shadow_allowed": 1,
	} {
		if got := stats.Get(name); got != want {
			t.Errorf("%s = %d, want %d (all: %v)", name, got, want, stats.Names())
		}
	}
}

func TestFailureMode(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	_, slowAddr := startServer(t)
	for _, tc := range []struct {
		name     string
		addr     string
		src      uint16
		failOpen bool
	}{
		{"server down", deadAddr, 1111, false},
		{"server down, fail open", deadAddr, 1111, true},
		{"timeout", slowAddr, 3333, false},
		{"timeout, fail open", slowAddr, 3333, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stats := &rbac.Counters{}
			n := &next{}
			chain(t, extauthz.Filters{Upstream: dialer(tc.addr), Stats: stats}, config(200*time.Millisecond, tc.failOpen), n).
				Serve(context.Background(), conn(t, tc.src, 7000, ""))
			if n.served != tc.failOpen {
				t.Errorf("served=%v, want %v", n.served, tc.failOpen)
			}
			wantClosed, wantAllowed := uint64(1), uint64(0)
			if tc.failOpen {
				wantClosed, wantAllowed = 0, 1
			}
			if stats.Get("ext_authz.tcp.error") != 1 || stats.Get("ext_authz.tcp.cx_closed") != wantClosed ||
				stats.Get("ext_authz.tcp.failure_mode_allowed") != wantAllowed {
				t.Errorf("counters %v: error=%d cx_closed=%d failure_mode_allowed=%d", stats.Names(),
					stats.Get("ext_authz.tcp.error"), stats.Get("ext_authz.tcp.cx_closed"), stats.Get("ext_authz.tcp.failure_mode_allowed"))
			}
		})
	}
}

func TestBuildRejects(t *testing.T) {
	up := dialer("127.0.0.1:1")
	for name, tc := range map[string]struct {
		f   extauthz.Filters
		mod func(*extauthzv3.ExtAuthz)
	}{
		"no dialer": {extauthz.Filters{}, func(*extauthzv3.ExtAuthz) {}},
		"google_grpc": {extauthz.Filters{Upstream: up}, func(c *extauthzv3.ExtAuthz) {
			c.GrpcService.TargetSpecifier = &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x", StatPrefix: "x"}}
		}},
		"initial metadata": {extauthz.Filters{Upstream: up}, func(c *extauthzv3.ExtAuthz) {
			c.GrpcService.InitialMetadata = []*corev3.HeaderValue{{Key: "k", Value: "v"}}
		}},
		"shadow mode":      {extauthz.Filters{Upstream: up}, func(c *extauthzv3.ExtAuthz) { c.ShadowMode = true }},
		"tls alert":        {extauthz.Filters{Upstream: up}, func(c *extauthzv3.ExtAuthz) { c.SendTlsAlertOnDenial = true }},
		"typed namespaces": {extauthz.Filters{Upstream: up}, func(c *extauthzv3.ExtAuthz) { c.TypedMetadataContextNamespaces = []string{"a"} }},
		"no stat prefix":   {extauthz.Filters{Upstream: up}, func(c *extauthzv3.ExtAuthz) { c.StatPrefix = "" }},
		"bad metadata matcher": {extauthz.Filters{Upstream: up}, func(c *extauthzv3.ExtAuthz) {
			c.FilterEnabledMetadata.Path = nil
		}},
	} {
		cfg := config(time.Second, false)
		tc.mod(cfg)
		if _, err := tc.f.Build(filterOf(t, cfg, "envoy.filters.network.ext_authz")); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
