package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/server/h2raw"
)

const adsMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

// limitedServer serves the ADS of a Server with a fake generator on a
// loopback TCP port, on a gRPC server built with l.ServerOptions().
func limitedServer(t *testing.T, l GRPCLimits) string {
	t.Helper()
	gen := newFakeGen()
	gen.set("1", world{xds.ClusterType: {"c": "x"}})
	srv, err := New(Config{Generator: gen, Debounce: time.Millisecond, DebounceMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(l.ServerOptions()...)
	srv.Register(g)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		srv.Run(ctx)
	}()
	srv.Update(snapshot("1"), PushRequest{Full: true})
	t.Cleanup(func() {
		cancel()
		<-ran
		g.Stop()
		<-served
	})
	return lis.Addr().String()
}

func rawConn(t *testing.T, addr string) *h2raw.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hc, err := h2raw.Handshake(c)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

// TestGRPCLimits drives a gRPC server built with GRPCLimits.ServerOptions
// past each limit with a raw HTTP/2 client or a real gRPC client.
func TestGRPCLimits(t *testing.T) {
	addr := limitedServer(t, GRPCLimits{
		MaxConcurrentStreams: 4, KeepaliveTime: time.Second, KeepaliveTimeout: time.Second,
		HandshakeTimeout: time.Second,
	})

	t.Run("streams over MaxConcurrentStreams are refused", func(t *testing.T) {
		c := rawConn(t, addr)
		for i := range uint32(5) {
			if err := c.OpenGRPC(2*i+1, "xds", adsMethod); err != nil {
				t.Fatal(err)
			}
		}
		f, err := c.Wait(waitFor, func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
		if err != nil {
			t.Fatalf("no RST_STREAM: %v", err)
		}
		if rst := f.(*http2.RSTStreamFrame); rst.StreamID != 9 || rst.ErrCode != http2.ErrCodeRefusedStream {
			t.Fatalf("RST_STREAM %d %v, want stream 9 REFUSED_STREAM", rst.StreamID, rst.ErrCode)
		}
	})

	t.Run("ping flood gets GOAWAY too_many_pings", func(t *testing.T) {
		c := rawConn(t, addr)
		for i := range 5 {
			if err := c.Framer.WritePing(false, [8]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		f, err := c.Wait(waitFor, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		if ga := f.(*http2.GoAwayFrame); ga.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(ga.DebugData()), "too_many_pings") {
			t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
		}
	})

	t.Run("silent peer in the middle of a frame is closed after the keepalive", func(t *testing.T) {
		c := rawConn(t, addr)
		// A DATA frame that announces 100 bytes and delivers 3; the client
		// then answers nothing, not even the server's keepalive ping.
		if _, err := c.Write(append(h2raw.FrameHeader(100, http2.FrameData, 0, 1), 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := h2raw.Closed(c, waitFor); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Fatalf("closed after %v, before the keepalive could fire", d)
		}
	})

	t.Run("no preface within the handshake timeout", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, waitFor)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := h2raw.Closed(c, waitFor); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("message over MaxRecvMsgSize", func(t *testing.T) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		md, _ := structpb.NewStruct(map[string]any{"PAD": strings.Repeat("x", DefaultMaxRecvMsgSize)})
		if err := stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", Metadata: md}, TypeUrl: xds.ClusterType}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("Recv = %v, want ResourceExhausted", err)
		}
	})
}

func TestGRPCLimitsDefaults(t *testing.T) {
	l := GRPCLimits{}.withDefaults()
	want := GRPCLimits{
		MaxRecvMsgSize: 4 << 20, MaxConcurrentStreams: 100, MaxHeaderListSize: 16 << 10,
		HandshakeTimeout: 10 * time.Second, KeepaliveTime: 30 * time.Second, KeepaliveTimeout: 10 * time.Second,
		KeepaliveMinTime: 15 * time.Second,
	}
	if l != want {
		t.Fatalf("defaults %+v, want %+v", l, want)
	}
	if n := len(GRPCLimits{}.ServerOptions()); n != 6 {
		t.Fatalf("%d options, want 6", n)
	}
}
