package manager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"unique"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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
	// match is the compiled transport_socket_matches criteria (empty for
	// the cluster's default socket, and for a match that matches all).
	match matcher
	// transport is nil for plaintext.
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
//
// Matches are compiled (compileMatch) when the cluster is: nothing of the
// Cluster message they came from is reachable from a sockets, and
// choosing a socket for a dial allocates nothing.
type sockets struct {
	matches []socket
	def     socket
}

func newSockets(ts upstream.TransportSocket, build Transports) (sockets, error) {
	var s sockets
	mk := func(name string, match matcher, cfg *corev3.TransportSocket) (socket, error) {
		t, err := build(cfg)
		if err != nil && !errors.Is(err, pool.ErrUnsupportedTransport) {
			return socket{}, err
		}
		return socket{name: intern(name), match: match, transport: t, err: err}, nil
	}
	var err error
	if s.def, err = mk("default", nil, ts.Default); err != nil {
		return sockets{}, fmt.Errorf("transport_socket: %w", err)
	}
	for i, m := range ts.Matches {
		sk, err := mk(m.GetName(), compileMatch(m.GetMatch()), m.GetTransportSocket())
		if err != nil {
			return sockets{}, fmt.Errorf("transport_socket_matches[%d] %q: %w", i, m.GetName(), err)
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
		if s.matches[i].match.matches(md) {
			return &s.matches[i]
		}
	}
	return &s.def
}

// matcher is a compiled transport_socket_matches[].match: its fields
// sorted by key. An endpoint matches when each field is present in its
// transport socket match metadata with an equal value (proto.Equal's
// equality: same kind; numbers equal, NaN equal to NaN; structs with the
// same keys and equal values; lists equal element by element). Extra
// metadata fields do not matter; an empty matcher matches every endpoint.
// Unknown fields of metadata values are not compared.
type matcher []matchField

// matchField is one field of a Struct, compiled.
type matchField struct {
	key string
	val matchValue
}

// valueKind is the kind of a google.protobuf.Value.
type valueKind uint8

const (
	kindUnset valueKind = iota // no kind set
	kindNull
	kindNumber
	kindString
	kindBool
	kindStruct
	kindList
)

// matchValue is a compiled google.protobuf.Value. Strings are canonical
// copies (unique), never the decoded message's.
type matchValue struct {
	kind valueKind
	// num is the number, or the null_value enum number.
	num    float64
	str    string
	b      bool
	fields []matchField // kindStruct, sorted by key
	list   []matchValue // kindList
}

// compileMatch compiles a match Struct; nil (or empty) matches all.
func compileMatch(st *structpb.Struct) matcher {
	return compileFields(st.GetFields())
}

func compileFields(fields map[string]*structpb.Value) []matchField {
	if len(fields) == 0 {
		return nil
	}
	out := make([]matchField, 0, len(fields))
	for k, v := range fields {
		out = append(out, matchField{key: intern(k), val: compileValue(v)})
	}
	slices.SortFunc(out, func(a, b matchField) int { return strings.Compare(a.key, b.key) })
	return out
}

func compileValue(v *structpb.Value) matchValue {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return matchValue{kind: kindNull, num: float64(k.NullValue)}
	case *structpb.Value_NumberValue:
		return matchValue{kind: kindNumber, num: k.NumberValue}
	case *structpb.Value_StringValue:
		return matchValue{kind: kindString, str: intern(k.StringValue)}
	case *structpb.Value_BoolValue:
		return matchValue{kind: kindBool, b: k.BoolValue}
	case *structpb.Value_StructValue:
		return matchValue{kind: kindStruct, fields: compileFields(k.StructValue.GetFields())}
	case *structpb.Value_ListValue:
		vs := k.ListValue.GetValues()
		out := make([]matchValue, len(vs))
		for i, e := range vs {
			out[i] = compileValue(e)
		}
		return matchValue{kind: kindList, list: out}
	}
	return matchValue{kind: kindUnset}
}

// matches reports whether every field of m is in have with an equal
// value.
func (m matcher) matches(have map[string]*structpb.Value) bool {
	for i := range m {
		hv, ok := have[m[i].key]
		if !ok || !m[i].val.equal(hv) {
			return false
		}
	}
	return true
}

// equal reports whether v equals the Value hv.
func (v *matchValue) equal(hv *structpb.Value) bool {
	if hv == nil {
		return false
	}
	switch k := hv.GetKind().(type) {
	case nil:
		return v.kind == kindUnset
	case *structpb.Value_NullValue:
		return v.kind == kindNull && v.num == float64(k.NullValue)
	case *structpb.Value_NumberValue:
		return v.kind == kindNumber && (v.num == k.NumberValue || math.IsNaN(v.num) && math.IsNaN(k.NumberValue))
	case *structpb.Value_StringValue:
		return v.kind == kindString && v.str == k.StringValue
	case *structpb.Value_BoolValue:
		return v.kind == kindBool && v.b == k.BoolValue
	case *structpb.Value_StructValue:
		hf := k.StructValue.GetFields()
		return v.kind == kindStruct && len(hf) == len(v.fields) && matcher(v.fields).matches(hf)
	case *structpb.Value_ListValue:
		hl := k.ListValue.GetValues()
		if v.kind != kindList || len(hl) != len(v.list) {
			return false
		}
		for i := range v.list {
			if !v.list[i].equal(hl[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// intern returns the canonical copy of s (names and match values repeat
// across clusters), never a pointer into a decoded message.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
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
