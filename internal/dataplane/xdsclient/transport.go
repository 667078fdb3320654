package xdsclient

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Full gRPC method names of the ADS streams.
const (
	methodDelta = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
	methodSotw  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
)

// Transport opens ADS streams to one server. It carries serialized
// messages only, as grpc-go's internal/xds/clients transport: the protocol
// logic never sees gRPC types, and a test or another transport (an
// in-memory pipe, a multiplexed connection) can stand in.
type Transport interface {
	// NewStream opens a bidirectional stream on a full gRPC method name.
	// The stream ends when ctx is done.
	NewStream(ctx context.Context, method string) (Stream, error)
	// Close releases the transport.
	Close() error
}

// Stream is one bidirectional stream. Send and Recv may be called from
// different goroutines, but neither concurrently with itself.
type Stream interface {
	Send(msg []byte) error
	Recv() ([]byte, error)
}

// grpcTransport is the default Transport: one gRPC client connection.
type grpcTransport struct {
	cc *grpc.ClientConn
}

// newGRPCTransport creates the connection (without dialling: grpc-go
// connects on the first stream). creds nil means plaintext. The channel's
// own reconnection back-off follows b, so that a long outage is not
// stretched to grpc-go's default maximum of 120s; opts come last and may
// override any of this.
func newGRPCTransport(target string, creds credentials.TransportCredentials, b Backoff, opts []grpc.DialOption) (*grpcTransport, error) {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: b.Base, Multiplier: 2, Jitter: 0.2, MaxDelay: b.Max},
			MinConnectTimeout: 20 * time.Second,
		}),
	}, opts...)
	cc, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("creating gRPC client for %q: %w", target, err)
	}
	return &grpcTransport{cc: cc}, nil
}

func (g *grpcTransport) NewStream(ctx context.Context, method string) (Stream, error) {
	s, err := g.cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method)
	if err != nil {
		return nil, err
	}
	return grpcStream{s}, nil
}

func (g *grpcTransport) Close() error { return g.cc.Close() }

type grpcStream struct{ s grpc.ClientStream }

func (s grpcStream) Send(msg []byte) error { return s.s.SendMsg(msg) }

func (s grpcStream) Recv() ([]byte, error) {
	var b []byte
	if err := s.s.RecvMsg(&b); err != nil {
		return nil, err
	}
	return b, nil
}

// bytesCodec passes already serialized protobuf messages through gRPC. Its
// empty name keeps the content type application/grpc (protobuf).
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return nil, fmt.Errorf("xdsclient codec: message is %T, want []byte", v)
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	if b, ok := v.(*[]byte); ok {
		*b = data
		return nil
	}
	return fmt.Errorf("xdsclient codec: target is %T, want *[]byte", v)
}

func (bytesCodec) Name() string { return "" }
