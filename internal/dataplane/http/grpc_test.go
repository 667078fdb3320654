package http_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// echoServer is a gRPC service without generated code: Unary echoes its
// input (failing with UNAVAILABLE once for inputs starting with "flaky",
// and with the status named by "fail:<code>"), Bidi echoes every message.
// Both set a trailer.
type echoServer struct {
	mu    sync.Mutex
	calls map[string]int
}

func (e *echoServer) unary(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	e.mu.Lock()
	e.calls[in.GetValue()]++
	n := e.calls[in.GetValue()]
	e.mu.Unlock()
	if strings.HasPrefix(in.GetValue(), "flaky") && n == 1 {
		return nil, status.Error(codes.Unavailable, "try again")
	}
	if in.GetValue() == "fail:permission" {
		return nil, status.Error(codes.PermissionDenied, "no")
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", "unary"))
	return wrapperspb.String("echo:" + in.GetValue()), nil
}

func (e *echoServer) bidi(stream grpc.ServerStream) error {
	for {
		in := new(wrapperspb.StringValue)
		err := stream.RecvMsg(in)
		if errors.Is(err, io.EOF) {
			stream.SetTrailer(metadata.Pairs("x-echo-trailer", "bidi"))
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.SendMsg(wrapperspb.String("echo:" + in.GetValue())); err != nil {
			return err
		}
	}
}

func echoDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "trellis.test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Unary",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.StringValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				return srv.(*echoServer).unary(ctx, in)
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Bidi",
			Handler:       func(srv any, s grpc.ServerStream) error { return srv.(*echoServer).bidi(s) },
			ServerStreams: true,
			ClientStreams: true,
		}},
	}
}

// TestGRPC runs a real grpc-go client and server through the proxy over
// h2c: unary and bidirectional streaming with trailers, gRPC status codes,
// and the route's retry on UNAVAILABLE.
func TestGRPC(t *testing.T) {
	ms := startMesh(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	srv.RegisterService(echoDesc(), &echoServer{calls: map[string]int{}})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	ms.up.set(echoAll, ln.Addr().String(), true)

	conn, err := grpc.NewClient("passthrough:///"+ms.proxy.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("echo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()

	t.Run("unary with trailers", func(t *testing.T) {
		var trailer metadata.MD
		out := new(wrapperspb.StringValue)
		if err := conn.Invoke(ctx, "/trellis.test.Echo/Unary", wrapperspb.String("hi"), out, grpc.Trailer(&trailer)); err != nil {
			t.Fatal(err)
		}
		if out.GetValue() != "echo:hi" || strings.Join(trailer.Get("x-echo-trailer"), ",") != "unary" {
			t.Errorf("got %q, trailer %v", out.GetValue(), trailer)
		}
		rec := ms.proxy.rec.wait(t, byPath("/trellis.test.Echo/Unary"))
		if rec.Cluster != echoAll || rec.ResponseCode != 200 || rec.Protocol != "HTTP/2.0" {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("status codes pass through", func(t *testing.T) {
		err := conn.Invoke(ctx, "/trellis.test.Echo/Unary", wrapperspb.String("fail:permission"), new(wrapperspb.StringValue))
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("got %v, want PermissionDenied", err)
		}
	})

	t.Run("retry on unavailable", func(t *testing.T) {
		out := new(wrapperspb.StringValue)
		if err := conn.Invoke(ctx, "/trellis.test.Echo/Unary", wrapperspb.String("flaky-1"), out); err != nil {
			t.Fatalf("retry did not hide UNAVAILABLE: %v", err)
		}
		if out.GetValue() != "echo:flaky-1" {
			t.Errorf("got %q", out.GetValue())
		}
		var attempts uint32
		ms.proxy.rec.wait(t, func(r *filter.Record) bool {
			if r.Path == "/trellis.test.Echo/Unary" && r.Attempts > 1 {
				attempts = r.Attempts
				return true
			}
			return false
		})
		if attempts != 2 {
			t.Errorf("attempts %d, want 2", attempts)
		}
	})

	t.Run("bidi streaming", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := conn.NewStream(sctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/trellis.test.Echo/Bidi")
		if err != nil {
			t.Fatal(err)
		}
		// Interleaved: each reply must come back before the next message
		// is sent, so nothing may be buffered whole on the way.
		for _, msg := range []string{"a", "b", "c"} {
			if err := st.SendMsg(wrapperspb.String(msg)); err != nil {
				t.Fatal(err)
			}
			in := new(wrapperspb.StringValue)
			if err := st.RecvMsg(in); err != nil {
				t.Fatal(err)
			}
			if in.GetValue() != "echo:"+msg {
				t.Errorf("got %q", in.GetValue())
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := st.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v", err)
		}
		if got := st.Trailer().Get("x-echo-trailer"); len(got) != 1 || got[0] != "bidi" {
			t.Errorf("trailer %v", st.Trailer())
		}
	})
}
