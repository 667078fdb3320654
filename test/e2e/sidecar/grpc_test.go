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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/trellismesh/trellis/test/framework"
)

const (
	grpcHost = "grpc-echo.default.svc.cluster.local"
	grpcPort = 7070 // port "grpc", protocol GRPC: HTTP/2 on both sidecars
)

// grpcServer is grpc.testing.TestService on 0.0.0.0:grpcPort in a reviews
// namespace. Every answer names the server and what it saw.
type grpcServer struct {
	testgrpc.UnimplementedTestServiceServer
	name    string
	unary   atomic.Int64
	streams atomic.Int64
	bidiIn  atomic.Int64 // messages received on FullDuplexCall streams

	mu   sync.Mutex
	last metadata.MD
}

func startGRPCServer(t *testing.T, ns *framework.Netns, name string) *grpcServer {
	s := &grpcServer{name: name}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, s)
	l := ns.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", grpcPort))
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return s
}

// seen records the call's metadata and describes it: "<name> peer=<addr>
// authority=<:authority>".
func (s *grpcServer) seen(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.last = md
	s.mu.Unlock()
	var remote string
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	return fmt.Sprintf("%s peer=%s authority=%s", s.name, remote, strings.Join(md.Get(":authority"), ","))
}

func (s *grpcServer) lastMD() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.Copy()
}

// UnaryCall answers ResponseSize 'x' bytes followed by the request payload.
func (s *grpcServer) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.unary.Add(1)
	return &testgrpc.SimpleResponse{
		Payload:  &testgrpc.Payload{Body: append(bytes.Repeat([]byte{'x'}, int(in.GetResponseSize())), in.GetPayload().GetBody()...)},
		Hostname: s.seen(ctx),
	}, nil
}

// StreamingOutputCall sends one message per ResponseParameters, after its
// interval: "<index>:" padded with 'y' to its size.
func (s *grpcServer) StreamingOutputCall(in *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	s.streams.Add(1)
	s.seen(stream.Context())
	for i, p := range in.GetResponseParameters() {
		if d := time.Duration(p.GetIntervalUs()) * time.Microsecond; d > 0 {
			select {
			case <-time.After(d):
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		body := []byte(strconv.Itoa(i) + ":")
		if pad := int(p.GetSize()) - len(body); pad > 0 {
			body = append(body, bytes.Repeat([]byte{'y'}, pad)...)
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// FullDuplexCall answers every message at once with "<name> <payload>".
func (s *grpcServer) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	s.streams.Add(1)
	s.seen(stream.Context())
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.bidiIn.Add(1)
		body := append([]byte(s.name+" "), in.GetPayload().GetBody()...)
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

// grpcUnaryCalls is the number of unary calls all servers handled.
func (m *mesh) grpcUnaryCalls() int64 {
	var n int64
	for _, s := range m.grpc {
		n += s.unary.Load()
	}
	return n
}

// grpcClient connects a grpc-go client from the client namespace to
// tcp-echo's address on grpcPort, where nothing listens: only the client
// sidecar's outbound listener 0.0.0.0_7070 can deliver the calls to the
// grpc-echo endpoints (the reviews workloads), whose inbound sidecars hand
// them to the servers from 127.0.0.6. It waits for that listener first (see
// waitListener: this connection is reused for every call).
func (m *mesh) grpcClient(t *testing.T) testgrpc.TestServiceClient {
	t.Helper()
	m.client.waitListener(t, fmt.Sprintf("0.0.0.0_%d", grpcPort))
	target := netip.AddrPortFrom(m.echo.ns.Addr, grpcPort).String()
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
	return testgrpc.NewTestServiceClient(cc)
}

// applyGRPCVS writes the grpc-echo VirtualService file.
func (m *mesh) applyGRPCVS(t *testing.T, content string) {
	t.Helper()
	m.cp.WriteFile(t, "grpc-virtual-service.yaml", content)
}

// vsGRPCService routes grpc-echo to the whole service.
const vsGRPCService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: grpc-echo
spec:
  hosts:
  - grpc-echo
  http:
  - route:
    - destination:
        host: grpc-echo
`

// vsGRPCMetadata: metadata end-user: jason to v2; end-user: abort aborted
// with gRPC status UNAVAILABLE by the client sidecar; everything else to v3.
const vsGRPCMetadata = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: grpc-echo
spec:
  hosts:
  - grpc-echo
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: grpc-echo
        subset: v2
  - match:
    - headers:
        end-user:
          exact: abort
    fault:
      abort:
        percentage:
          value: 100
        grpcStatus: UNAVAILABLE
    route:
    - destination:
        host: grpc-echo
        subset: v1
  - route:
    - destination:
        host: grpc-echo
        subset: v3
`

// unaryResult is a histogram of unary calls: answers by server name,
// failures by code.
type unaryResult struct {
	N      int
	Names  map[string]int
	Codes  map[codes.Code]int
	Errors map[string]int // other problems (payload, peer)
	Last   *testgrpc.SimpleResponse
}

func (r unaryResult) String() string {
	return fmt.Sprintf("n=%d names=%v codes=%v errors=%v", r.N, r.Names, r.Codes, r.Errors)
}

// unary makes n calls, one at a time, with metadata md ("k", "v", ...),
// checking each answer's payload and that the server saw the inbound
// sidecar as its peer.
func unary(client testgrpc.TestServiceClient, n int, md ...string) unaryResult {
	r := unaryResult{N: n, Names: map[string]int{}, Codes: map[codes.Code]int{}, Errors: map[string]int{}}
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if len(md) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, md...)
		}
		body := fmt.Sprintf("call %d", i)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 16, Payload: &testgrpc.Payload{Body: []byte(body)}})
		cancel()
		r.Codes[status.Code(err)]++
		if err != nil {
			continue
		}
		name, _, _ := strings.Cut(resp.GetHostname(), " ")
		r.Names[name]++
		r.Last = resp
		if want := strings.Repeat("x", 16) + body; string(resp.GetPayload().GetBody()) != want {
			r.Errors[fmt.Sprintf("payload %q, want %q", resp.GetPayload().GetBody(), want)]++
		}
		if !strings.Contains(resp.GetHostname(), " peer="+passthroughSrc+":") {
			r.Errors[fmt.Sprintf("server saw %q: want the inbound sidecar (%s) as peer", resp.GetHostname(), passthroughSrc)]++
		}
	}
	return r
}

// testGRPCUnary: unary calls through both sidecars, balanced over the
// grpc-echo endpoints, with the HTTP connection manager's headers and the
// original :authority reaching the server.
func testGRPCUnary(t *testing.T, m *mesh) {
	m.applyGRPCVS(t, vsGRPCService)
	client := m.grpcClient(t)
	framework.Eventually(t, propagation, func() error {
		r := unary(client, 30)
		if r.Codes[codes.OK] != r.N || len(r.Errors) > 0 || len(r.Names) < 2 {
			return fmt.Errorf("want %d calls answered by at least two servers: %v", r.N, r)
		}
		return nil
	})
	const n = 150
	before := m.grpcUnaryCalls()
	r := unary(client, n)
	t.Logf("%d unary calls through both sidecars: %v; last answer %q", n, r, r.Last.GetHostname())
	if r.Codes[codes.OK] != n || len(r.Errors) > 0 {
		t.Errorf("want %d successful calls: %v", n, r)
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		if r.Names["reviews-"+v] == 0 {
			t.Errorf("reviews-%s never served a call: the client sidecar should balance over every grpc-echo endpoint: %v", v, r)
		}
	}
	if got := m.grpcUnaryCalls() - before; got != n {
		t.Errorf("servers handled %d unary calls for %d made", got, n)
	}
	name, _, _ := strings.Cut(r.Last.GetHostname(), " ")
	srv := m.grpc[strings.TrimPrefix(name, "reviews-")]
	if srv == nil {
		t.Fatalf("last answer from unknown server %q", r.Last.GetHostname())
	}
	md := srv.lastMD()
	for _, h := range []string{"x-forwarded-proto", "x-request-id"} {
		if len(md.Get(h)) == 0 {
			t.Errorf("server did not see %s (added by the sidecars' HTTP connection manager): %v", h, md)
		}
	}
	if want := fmt.Sprintf("authority=%s:%d", grpcHost, grpcPort); !strings.Contains(r.Last.GetHostname(), want) {
		t.Errorf("server saw %q, want %s", r.Last.GetHostname(), want)
	}
}

// testGRPCMetadataRouting: a VirtualService matching gRPC metadata (HTTP/2
// headers) routes to subsets, and a grpcStatus abort is answered by the
// client sidecar without reaching any server.
func testGRPCMetadataRouting(t *testing.T, m *mesh) {
	m.applyGRPCVS(t, vsGRPCMetadata)
	client := m.grpcClient(t)
	framework.Eventually(t, propagation, func() error {
		if r := unary(client, 10, jasonHeader, jasonValue); r.Names["reviews-v2"] != r.N {
			return fmt.Errorf("end-user: jason: want all %d on v2: %v", r.N, r)
		}
		if r := unary(client, 10); r.Names["reviews-v3"] != r.N {
			return fmt.Errorf("no end-user: want all %d on v3: %v", r.N, r)
		}
		if r := unary(client, 5, jasonHeader, "abort"); r.Codes[codes.Unavailable] != r.N {
			return fmt.Errorf("end-user: abort: want all %d UNAVAILABLE: %v", r.N, r)
		}
		return nil
	})
	jason := unary(client, 100, jasonHeader, jasonValue)
	other := unary(client, 100, jasonHeader, "mallory")
	before := m.grpcUnaryCalls()
	aborted := unary(client, 100, jasonHeader, "abort")
	reached := m.grpcUnaryCalls() - before
	t.Logf("metadata routing: jason %v; mallory %v; abort %v (servers reached %d times)", jason, other, aborted, reached)
	if jason.Names["reviews-v2"] != 100 || len(jason.Errors) > 0 {
		t.Errorf("end-user: jason: want 100/100 on v2: %v", jason)
	}
	if other.Names["reviews-v3"] != 100 || len(other.Errors) > 0 {
		t.Errorf("end-user: mallory: want 100/100 on v3: %v", other)
	}
	if aborted.Codes[codes.Unavailable] != 100 {
		t.Errorf("end-user: abort: want 100 × UNAVAILABLE from the fault: %v", aborted)
	}
	if reached != 0 {
		t.Errorf("aborted calls reached the servers %d times: the fault must be injected by the client sidecar", reached)
	}
	if got := m.grpc["v2"].lastMD().Get(jasonHeader); len(got) != 1 || got[0] != jasonValue {
		t.Errorf("v2 saw end-user %v, want [%s]", got, jasonValue)
	}
}

// testGRPCServerStreaming: a server-streaming call of 200 messages of
// growing sizes (up to 64 KiB, more than one HTTP/2 frame and window)
// arrives complete and in order.
func testGRPCServerStreaming(t *testing.T, m *mesh) {
	m.applyGRPCVS(t, vsGRPCService)
	client := m.grpcClient(t)
	const n = 200
	req := &testgrpc.StreamingOutputCallRequest{}
	for i := range n {
		req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{Size: int32(1 + i*i*64%(64<<10))})
	}
	framework.Eventually(t, propagation, func() error {
		_, err := serverStream(client, &testgrpc.StreamingOutputCallRequest{ResponseParameters: req.ResponseParameters[:3]})
		return err
	})
	got, err := serverStream(client, req)
	if err != nil {
		t.Fatalf("StreamingOutputCall through both sidecars: %v", err)
	}
	var bytes int
	for i, body := range got {
		bytes += len(body)
		if want := int(req.ResponseParameters[i].GetSize()); len(body) != max(want, len(strconv.Itoa(i))+1) {
			t.Errorf("message %d: %d bytes, want %d", i, len(body), want)
		}
	}
	t.Logf("server-streaming call through both sidecars: %d messages, %d bytes, in order", len(got), bytes)
	if len(got) != n {
		t.Errorf("received %d messages, want %d", len(got), n)
	}
}

// serverStream makes one StreamingOutputCall and returns the message
// bodies; it fails unless every message carries its index in order.
func serverStream(client testgrpc.TestServiceClient, req *testgrpc.StreamingOutputCallRequest) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.StreamingOutputCall(ctx, req)
	if err != nil {
		return nil, err
	}
	var got [][]byte
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return got, fmt.Errorf("after %d messages: %w", len(got), err)
		}
		body := resp.GetPayload().GetBody()
		if prefix := strconv.Itoa(len(got)) + ":"; !bytes.HasPrefix(body, []byte(prefix)) {
			return got, fmt.Errorf("message %d starts %q, want %q (out of order)", len(got), body[:min(len(body), 10)], prefix)
		}
		got = append(got, body)
	}
	if len(got) != len(req.GetResponseParameters()) {
		return got, fmt.Errorf("received %d messages, want %d", len(got), len(req.GetResponseParameters()))
	}
	return got, nil
}

// testGRPCBidiLongLived: a bidirectional stream that lives for about 4
// seconds (one message each way every 100 ms, then a burst of 200
// pipelined messages) keeps every message, in order, on one server.
func testGRPCBidiLongLived(t *testing.T, m *mesh) {
	m.applyGRPCVS(t, vsGRPCService)
	client := m.grpcClient(t)
	framework.Eventually(t, propagation, func() error {
		r := unary(client, 1)
		if r.Codes[codes.OK] != 1 {
			return fmt.Errorf("grpc-echo not reachable yet: %v", r)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatalf("FullDuplexCall: %v", err)
	}
	var server string
	// recv reads one answer and checks it echoes seq from the same server.
	recv := func(seq int) error {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("receiving answer %d: %w", seq, err)
		}
		name, msg, _ := strings.Cut(string(resp.GetPayload().GetBody()), " ")
		if server == "" {
			server = name
		}
		if name != server || msg != fmt.Sprintf("seq=%d", seq) {
			return fmt.Errorf("answer %d is %q from %s, want %q from %s", seq, msg, name, fmt.Sprintf("seq=%d", seq), server)
		}
		return nil
	}
	send := func(seq int) error {
		return stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(fmt.Sprintf("seq=%d", seq))}})
	}
	var inBefore int64
	for _, s := range m.grpc {
		inBefore += s.bidiIn.Load()
	}
	start := time.Now()
	const paced, burst = 40, 200
	for seq := range paced {
		if err := send(seq); err != nil {
			t.Fatalf("sending %d: %v", seq, err)
		}
		if err := recv(seq); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	errc := make(chan error, 1)
	go func() {
		for seq := paced; seq < paced+burst; seq++ {
			if err := send(seq); err != nil {
				errc <- fmt.Errorf("sending %d: %w", seq, err)
				return
			}
		}
		errc <- stream.CloseSend()
	}()
	for seq := paced; seq < paced+burst; seq++ {
		if err := recv(seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseSend the stream should end with io.EOF, got %v", err)
	}
	lived := time.Since(start)
	srv := m.grpc[strings.TrimPrefix(server, "reviews-")]
	if srv == nil {
		t.Fatalf("answers from unknown server %q", server)
	}
	t.Logf("bidirectional stream through both sidecars: %d messages each way, in order, on %s, lived %v", paced+burst, server, lived.Round(time.Millisecond))
	if got := srv.bidiIn.Load(); got < paced+burst {
		t.Errorf("%s received %d messages on its streams, want ≥ %d", server, got, paced+burst)
	}
	var inAll int64
	for _, s := range m.grpc {
		inAll += s.bidiIn.Load()
	}
	if inAll-inBefore != paced+burst {
		t.Errorf("servers received %d stream messages for %d sent", inAll-inBefore, paced+burst)
	}
	if lived < 4*time.Second {
		t.Errorf("the stream lived %v, want ≥ 4s", lived)
	}
}
