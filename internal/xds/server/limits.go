package server

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Defaults of GRPCLimits.
const (
	DefaultMaxRecvMsgSize       = 4 << 20
	DefaultMaxConcurrentStreams = 100
	DefaultMaxHeaderListSize    = 16 << 10
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultKeepaliveTime        = 30 * time.Second
	DefaultKeepaliveTimeout     = 10 * time.Second
	DefaultKeepaliveMinTime     = 15 * time.Second
)

// GRPCLimits bound what one client can make an xDS port hold
// (SECURITY.md E6). gRPC's own defaults allow 2^32-1 concurrent streams
// (and so handler goroutines) per connection, 16 MB of request headers,
// 120 s to finish the handshake, and leave a silent peer — one that stopped
// half-way through a frame — connected for two hours.
type GRPCLimits struct {
	// MaxRecvMsgSize bounds one request message; gRPC refuses a larger one
	// from its length prefix, before reading it (ResourceExhausted).
	MaxRecvMsgSize int
	// MaxConcurrentStreams bounds the streams of one connection; more are
	// refused (RST_STREAM REFUSED_STREAM), which also caps the handler
	// goroutines a client resetting streams can keep alive. A proxy uses
	// one ADS stream; a node agent a few.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize bounds the request headers of one stream.
	MaxHeaderListSize uint32
	// HandshakeTimeout bounds the TLS handshake and HTTP/2 preface.
	HandshakeTimeout time.Duration
	// KeepaliveTime and KeepaliveTimeout: after KeepaliveTime without
	// any frame from the client the server pings it, and closes the
	// connection when nothing arrives within KeepaliveTimeout.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// KeepaliveMinTime is the shortest interval between client pings the
	// server accepts (with or without active streams); a client pinging
	// faster gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
	KeepaliveMinTime time.Duration
}

func (l GRPCLimits) withDefaults() GRPCLimits {
	if l.MaxRecvMsgSize <= 0 {
		l.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.MaxHeaderListSize == 0 {
		l.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.KeepaliveTime <= 0 {
		l.KeepaliveTime = DefaultKeepaliveTime
	}
	if l.KeepaliveTimeout <= 0 {
		l.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	if l.KeepaliveMinTime <= 0 {
		l.KeepaliveMinTime = DefaultKeepaliveMinTime
	}
	return l
}

// ServerOptions returns the gRPC server options enforcing l (zero fields
// take the defaults). Options given later to grpc.NewServer override
// earlier ones of the same kind.
func (l GRPCLimits) ServerOptions() []grpc.ServerOption {
	l = l.withDefaults()
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(l.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(l.MaxHeaderListSize),
		grpc.ConnectionTimeout(l.HandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: l.KeepaliveTime, Timeout: l.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: true}),
	}
}
