//go:build linux

package sidecar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/trellismesh/trellis/test/framework"
)

const (
	grpcHost = "grpc-echo.default.svc.cluster.local"
	grpcPort = 7070
)

// grpcServicesYAML declares a GRPC port served by the tcp-echo workload
// (its sidecar then gets an HTTP/2 inbound listener on grpcPort).
var grpcServicesYAML = fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: grpc-echo
  namespace: default
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  ports:
  - number: %d
    name: grpc
    protocol: GRPC
  resolution: STATIC
  workloadSelector:
    labels:
      app: tcp-echo
`, grpcHost, grpcPort)

// grpcServer is grpc.testing.TestService in the tcp-echo namespace; it
// answers with what it saw (peer and :authority) in Hostname.
type grpcServer struct {
	testgrpc.UnimplementedTestServiceServer
	unary   atomic.Int64
	streams atomic.Int64

	mu   sync.Mutex
	last metadata.MD
}

func (s *grpcServer) seen(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.last = md
	s.mu.Unlock()
	var remote string
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	return fmt.Sprintf("peer=%s authority=%s", remote, strings.Join(md.Get(":authority"), ","))
}

func (s *grpcServer) lastMD() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.Copy()
}

func (s *grpcServer) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.unary.Add(1)
	return &testgrpc.SimpleResponse{
		Payload:  &testgrpc.Payload{Body: append(bytes.Repeat([]byte{'x'}, int(in.GetResponseSize())), in.GetPayload().GetBody()...)},
		Hostname: s.seen(ctx),
	}, nil
}

func (s *grpcServer) StreamingOutputCall(in *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	s.streams.Add(1)
	s.seen(stream.Context())
	for _, p := range in.GetResponseParameters() {
		if d := time.Duration(p.GetIntervalUs()) * time.Microsecond; d > 0 {
			time.Sleep(d)
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: bytes.Repeat([]byte{'y'}, int(p.GetSize()))}}); err != nil {
			return err
		}
	}
	return nil
}

// testGRPC: unary and server-streaming gRPC calls through both sidecars.
// The client addresses reviews-v1's IP, where nothing listens on grpcPort:
// only the client sidecar's outbound listener can deliver the calls to the
// grpc-echo workload, whose inbound sidecar hands them to the server from
// 127.0.0.6.
//
// Not yet run by TestSidecarBookinfo: every call currently fails in the
// client sidecar with "Unavailable: upstream connect error or
// disconnect/reset before headers. reset reason: connection failure"
// (protocol GRPC and HTTP2 alike), although the outbound listener, cluster
// and endpoint 10.88.0.14:7070 and the inbound|7070 cluster are pushed.
// Enable it with t.Run("GRPCThroughBothSidecars", ...) once that is fixed.
var _ = testGRPC // kept compiled until enabled (see above)

func testGRPC(t *testing.T, m *mesh) {
	srv := &grpcServer{}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, srv)
	l := m.echo.ns.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", grpcPort))
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	m.cp.WriteFile(t, "grpc-echo.yaml", grpcServicesYAML)
	t.Cleanup(func() {
		if t.Failed() {
			out, err := m.echo.admin("/config_dump")
			if len(out) > 30000 {
				out = out[:30000] + "\n... (truncated)"
			}
			t.Logf("grpc-echo (tcp-echo) sidecar /config_dump (err %v):\n%s", err, out)
		}
	})

	target := netip.AddrPortFrom(m.reviews["v1"].ns.Addr, grpcPort).String()
	cc, err := grpc.NewClient("passthrough:///"+target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(fmt.Sprintf("%s:%d", grpcHost, grpcPort)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return m.client.ns.DialContext(ctx, "tcp", addr)
		}),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	client := testgrpc.NewTestServiceClient(cc)

	unary := func(i int) (*testgrpc.SimpleResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body := fmt.Sprintf("call %d", i)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 16, Payload: &testgrpc.Payload{Body: []byte(body)}})
		if err != nil {
			return nil, err
		}
		if want := strings.Repeat("x", 16) + body; string(resp.GetPayload().GetBody()) != want {
			return resp, fmt.Errorf("payload %q, want %q", resp.GetPayload().GetBody(), want)
		}
		if !strings.Contains(resp.GetHostname(), "peer="+passthroughSrc+":") {
			return resp, fmt.Errorf("server saw %q: want the inbound sidecar (%s) as peer", resp.GetHostname(), passthroughSrc)
		}
		return resp, nil
	}
	var first *testgrpc.SimpleResponse
	framework.Eventually(t, propagation, func() error {
		var err error
		first, err = unary(-1)
		return err
	})
	md := srv.lastMD()
	t.Logf("first unary call through both sidecars: server saw %q; metadata %v", first.GetHostname(), md)
	for _, h := range []string{"x-forwarded-proto", "x-request-id"} {
		if len(md.Get(h)) == 0 {
			t.Errorf("server did not see %s (added by the sidecars' HTTP connection manager): %v", h, md)
		}
	}

	const n = 50
	before := srv.unary.Load()
	for i := range n {
		if _, err := unary(i); err != nil {
			t.Fatalf("unary call %d through both sidecars: %v", i, err)
		}
	}
	if got := srv.unary.Load() - before; got != n {
		t.Errorf("server handled %d unary calls for %d made", got, n)
	}

	sizes := []int32{1, 10, 100, 1000, 10000}
	req := &testgrpc.StreamingOutputCallRequest{}
	for _, s := range sizes {
		req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{Size: s, IntervalUs: 20000})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.StreamingOutputCall(ctx, req)
	if err != nil {
		t.Fatalf("StreamingOutputCall: %v", err)
	}
	var got []int
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("StreamingOutputCall: after %d messages %v: %v", len(got), got, err)
		}
		got = append(got, len(resp.GetPayload().GetBody()))
	}
	t.Logf("%d unary calls and a server-streaming call through both sidecars: stream message sizes %v", n, got)
	if fmt.Sprint(got) != fmt.Sprint(sizes) {
		t.Errorf("stream message sizes %v, want %v", got, sizes)
	}
	if srv.streams.Load() != 1 {
		t.Errorf("server handled %d streaming calls, want 1", srv.streams.Load())
	}
}
