package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
)

// Backend is a gRPC TestService server that answers UnaryCall with its name
// in SimpleResponse.Hostname. Behaviour can be changed while it runs.
type Backend struct {
	testgrpc.UnimplementedTestServiceServer
	Name string
	Port int
	// Calls counts calls received.
	Calls atomic.Int64
	// FailEvery, when n > 0, fails every n-th call (1-based) with UNAVAILABLE.
	FailEvery atomic.Int64
	// Delay sleeps before answering.
	Delay atomic.Int64 // nanoseconds

	mu         sync.Mutex
	lastHeader metadata.MD
}

// StartBackend serves a Backend on 127.0.0.1 until the test ends.
func StartBackend(t testing.TB, name string) *Backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{Name: name, Port: l.Addr().(*net.TCPAddr).Port}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, b)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return b
}

// UnaryCall answers with the backend's name.
func (b *Backend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	n := b.Calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	b.mu.Lock()
	b.lastHeader = md
	b.mu.Unlock()
	if d := time.Duration(b.Delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if every := b.FailEvery.Load(); every > 0 && n%every == 1%every {
		return nil, status.Errorf(codes.Unavailable, "%s: injected failure on call %d", b.Name, n)
	}
	return &testgrpc.SimpleResponse{Hostname: b.Name}, nil
}

// LastMetadata returns the metadata of the last call received.
func (b *Backend) LastMetadata() metadata.MD {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastHeader
}

// Bootstrap returns an Istio-style grpc-go xDS bootstrap for a proxyless
// client: node id sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local, metadata
// GENERATOR=grpc, server URI the control plane's xDS address.
func Bootstrap(xdsAddr, ip, pod, ns string, labels map[string]string) []byte {
	meta := map[string]any{"GENERATOR": "grpc", "NAMESPACE": ns}
	if len(labels) > 0 {
		meta["LABELS"] = labels
	}
	b, _ := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, pod, ns, ns),
			"metadata": meta,
			"locality": map[string]any{},
		},
	})
	return b
}

// Client is a proxyless gRPC client of one xds:/// target.
type Client struct {
	Conn *grpc.ClientConn
	Stub testgrpc.TestServiceClient
}

// DialXDS connects to target (host:port) through the control plane's xDS.
func DialXDS(t testing.TB, xdsAddr, target string, labels map[string]string) *Client {
	t.Helper()
	builder, err := xds.NewXDSResolverWithConfigForTesting(Bootstrap(xdsAddr, "127.0.0.100", "client-"+t.Name(), "default", labels))
	if err != nil {
		t.Fatalf("xds resolver: %v", err)
	}
	conn, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(builder), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Client{Conn: conn, Stub: testgrpc.NewTestServiceClient(conn)}
}

// Call makes one UnaryCall with the given metadata and returns the serving
// backend's name.
func (c *Client) Call(ctx context.Context, md ...string) (string, error) {
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	resp, err := c.Stub.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetHostname(), nil
}

// Distribution makes n calls and counts the serving backends; errors are
// counted under "error: <code>".
func (c *Client) Distribution(t testing.TB, n int, md ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		name, err := c.Call(ctx, md...)
		cancel()
		if err != nil {
			out["error: "+status.Code(err).String()]++
			continue
		}
		out[name]++
	}
	return out
}
