package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

// TestRegisterAuthenticated runs one Server on two gRPC servers, one
// plain and one with a StreamAuth that takes the identity from request
// metadata (standing in for a client certificate), and checks the
// results of the hook: its status codes reach the client, a plain error
// becomes PermissionDenied, and the bound identity is what generators see.
func TestRegisterAuthenticated(t *testing.T) {
	gen := newFakeGen()
	gen.set("v1", baseWorld("a"))
	var mu sync.Mutex
	seen := map[string]string{} // proxy ID → namespace/service account generators saw
	gen.hook = func(p *model.Proxy, _ string) error {
		mu.Lock()
		seen[p.ID] = p.Namespace + "/" + p.ServiceAccount
		mu.Unlock()
		return nil
	}
	srv, err := New(Config{Generator: gen, Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	auth := func(ctx context.Context, p *model.Proxy) error {
		md, _ := metadata.FromIncomingContext(ctx)
		who := md.Get("who")
		switch {
		case len(who) == 0:
			return status.Error(codes.Unauthenticated, "no identity")
		case who[0] == "broken":
			return errors.New("identity store broken")
		case p.Namespace != "ns1":
			return status.Errorf(codes.PermissionDenied, "namespace %q is not the identity's", p.Namespace)
		}
		p.ServiceAccount = who[0]
		return nil
	}
	plain, secure := grpc.NewServer(), grpc.NewServer()
	srv.Register(plain)
	srv.RegisterAuthenticated(secure, auth)
	dial := func(g *grpc.Server) *grpc.ClientConn {
		lis := bufconn.Listen(1 << 20)
		done := make(chan struct{})
		go func() { defer close(done); _ = g.Serve(lis) }()
		t.Cleanup(func() { g.Stop(); <-done })
		cc, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}
	plainCC, secureCC := dial(plain), dial(secure)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	srv.Update(snapshot("v1"), PushRequest{Full: true})

	open := func(cc *grpc.ClientConn, who string) *sotwClient {
		ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
		return startClient(t, func(ctx context.Context) (grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], error) {
			if who != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "who", who)
			}
			return ads.StreamAggregatedResources(ctx)
		})
	}
	refused := []struct {
		name, who, ns string
		code          codes.Code
	}{
		{"no identity", "", "ns1", codes.Unauthenticated},
		{"other namespace", "sa1", "ns2", codes.PermissionDenied},
		{"plain error", "broken", "ns1", codes.PermissionDenied},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c := open(secureCC, tc.who)
			c.send(&discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.1", "p", tc.ns)), TypeUrl: xds.ClusterType})
			if err := c.end(); status.Code(err) != tc.code {
				t.Fatalf("stream ended with %v, want %v", err, tc.code)
			}
		})
	}
	t.Run("bound identity reaches the generator", func(t *testing.T) {
		id := sidecarID("10.0.0.2", "p", "ns1")
		c := open(secureCC, "sa-from-cert")
		c.send(&discovery.DiscoveryRequest{Node: node(id), TypeUrl: xds.ClusterType})
		if r := c.recv(); r.GetTypeUrl() != xds.ClusterType {
			t.Fatalf("got %s", r.GetTypeUrl())
		}
		mu.Lock()
		got := seen[id]
		mu.Unlock()
		if got != "ns1/sa-from-cert" {
			t.Fatalf("generator saw %q, want ns1/sa-from-cert", got)
		}
	})
	t.Run("plain registration is not authenticated", func(t *testing.T) {
		id := sidecarID("10.0.0.3", "p", "ns2")
		c := open(plainCC, "")
		c.send(&discovery.DiscoveryRequest{Node: node(id), TypeUrl: xds.ClusterType})
		if r := c.recv(); r.GetTypeUrl() != xds.ClusterType {
			t.Fatalf("got %s", r.GetTypeUrl())
		}
	})
}
