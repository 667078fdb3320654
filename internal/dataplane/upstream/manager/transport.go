package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// Transport secures a freshly dialled connection to a host: the client
// side of a transport socket (TLS). It runs within the connect timeout.
// alpn, when not nil, replaces the socket's configured ALPN protocols
// (Istio's ALPN override for HTTP connections). peer is the host's
// identity as the socket verified it: the first URI SAN (SPIFFE ID) of a
// server certificate checked against the trust bundle, "" when the socket
// verifies none.
type Transport interface {
	Client(ctx context.Context, c net.Conn, h *host.Host, alpn []string) (conn net.Conn, peer string, err error)
}

// Transports builds the Transport of a transport socket configuration.
// It returns a nil Transport for plaintext (raw_buffer), and an error
// wrapping pool.ErrUnsupportedTransport for sockets it cannot provide:
// hosts that need them fail to connect (UF) with that error rather than
// getting plaintext. Any other error rejects the cluster.
type Transports func(ts *corev3.TransportSocket) (Transport, error)

// Transport socket names and type URLs known here.
const (
	rawBufferName = "envoy.transport_sockets.raw_buffer"
	rawBufferType = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
)

// PlaintextOnly is the default Transports: raw_buffer (or no transport
// socket) is plaintext; anything else — TLS for ISTIO_MUTUAL and SIMPLE —
// is unsupported, so those hosts fail clearly instead of receiving
// plaintext.
func PlaintextOnly(ts *corev3.TransportSocket) (Transport, error) {
	if isRawBuffer(ts) {
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %s (%s) is not implemented yet; refusing to fall back to plaintext",
		pool.ErrUnsupportedTransport, ts.GetName(), strings.TrimPrefix(ts.GetTypedConfig().GetTypeUrl(), "type.googleapis.com/"))
}

func isRawBuffer(ts *corev3.TransportSocket) bool {
	if ts == nil {
		return true
	}
	if tc := ts.GetTypedConfig(); tc != nil {
		return tc.GetTypeUrl() == rawBufferType
	}
	return ts.GetName() == rawBufferName
}

// socket is one candidate transport socket of a cluster.
type socket struct {
	name string
	// match is the transport_socket_matches criteria (nil for the
	// cluster's default socket).
	match     *structpb.Struct
	transport Transport
	// err: the socket cannot be used (wraps pool.ErrUnsupportedTransport).
	err error
}

// sockets is a cluster's transport socket choice, as Envoy's
// TransportSocketMatcher: the first transport_socket_matches entry whose
// match fields all equal the endpoint's
// filter_metadata["envoy.transport_socket_match"] fields, else the
// cluster's transport_socket. Istio's auto mTLS relies on it: endpoints
// with tlsMode "istio" get mTLS, the others plaintext.
type sockets struct {
	matches []socket
	def     socket
}

func newSockets(ts upstream.TransportSocket, build Transports) (sockets, error) {
	var s sockets
	mk := func(name string, match *structpb.Struct, cfg *corev3.TransportSocket) (socket, error) {
		t, err := build(cfg)
		if err != nil && !errors.Is(err, pool.ErrUnsupportedTransport) {
			return socket{}, err
		}
		return socket{name: name, match: match, transport: t, err: err}, nil
	}
	var err error
	if s.def, err = mk("default", nil, ts.Default); err != nil {
		return sockets{}, fmt.Errorf("transport_socket: %w", err)
	}
	for i, m := range ts.Matches {
		sk, err := mk(m.GetName(), m.GetMatch(), m.GetTransportSocket())
		if err != nil {
			return sockets{}, fmt.Errorf("transport_socket_matches[%d]: %w", i, err)
		}
		if sk.match == nil {
			sk.match = &structpb.Struct{}
		}
		s.matches = append(s.matches, sk)
	}
	return s, nil
}

// forEndpoint returns the socket of an endpoint.
func (s *sockets) forEndpoint(ep *host.Endpoint) *socket {
	if len(s.matches) == 0 {
		return &s.def
	}
	md := ep.Metadata.GetFilterMetadata()[upstream.TransportSocketMatchKey].GetFields()
	for i := range s.matches {
		if matches(s.matches[i].match, md) {
			return &s.matches[i]
		}
	}
	return &s.def
}

func matches(want *structpb.Struct, have map[string]*structpb.Value) bool {
	for k, v := range want.GetFields() {
		if hv, ok := have[k]; !ok || !proto.Equal(v, hv) {
			return false
		}
	}
	return true
}

// label names the socket for the admin interface.
func (s *socket) label() string {
	switch {
	case s.err != nil:
		return s.name + ": unsupported"
	case s.transport == nil:
		return s.name + ": plaintext"
	}
	return s.name
}
