package manager

import (
	"errors"
	"math"
	"runtime"
	"testing"
	"time"
	"unsafe"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// equalMatch is the matching rule as the proxy applied it before matches
// were compiled (proto.Equal per field): the reference the compiled
// matcher must agree with.
func equalMatch(want *structpb.Struct, have map[string]*structpb.Value) bool {
	for k, v := range want.GetFields() {
		if hv, ok := have[k]; !ok || !proto.Equal(v, hv) {
			return false
		}
	}
	return true
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatcher(t *testing.T) {
	nan := structpb.NewNumberValue(math.NaN())
	unset := &structpb.Value{}
	for _, tc := range []struct {
		name       string
		want, have map[string]any
		// wantV and haveV add values NewStruct cannot express.
		wantV, haveV map[string]*structpb.Value
		match        bool
	}{
		{name: "empty match matches all", want: nil, have: map[string]any{"tlsMode": "istio"}, match: true},
		{name: "empty match, no metadata", want: nil, have: nil, match: true},
		{name: "istio", want: map[string]any{"tlsMode": "istio"}, have: map[string]any{"tlsMode": "istio"}, match: true},
		{name: "other value", want: map[string]any{"tlsMode": "istio"}, have: map[string]any{"tlsMode": "disabled"}, match: false},
		{name: "missing key", want: map[string]any{"tlsMode": "istio"}, have: map[string]any{"other": "istio"}, match: false},
		{name: "no metadata", want: map[string]any{"tlsMode": "istio"}, have: nil, match: false},
		{name: "extra endpoint keys", want: map[string]any{"tlsMode": "istio"}, have: map[string]any{"tlsMode": "istio", "zone": "a"}, match: true},
		{name: "every key must match", want: map[string]any{"tlsMode": "istio", "zone": "a"}, have: map[string]any{"tlsMode": "istio", "zone": "b"}, match: false},
		{name: "every key present", want: map[string]any{"tlsMode": "istio", "zone": "a"}, have: map[string]any{"tlsMode": "istio", "zone": "a", "x": true}, match: true},
		{name: "number", want: map[string]any{"n": 1.5}, have: map[string]any{"n": 1.5}, match: true},
		{name: "number differs", want: map[string]any{"n": 1.5}, have: map[string]any{"n": 2}, match: false},
		{name: "zero and negative zero", want: map[string]any{"n": 0.0}, have: map[string]any{"n": math.Copysign(0, -1)}, match: true},
		{name: "number is not string", want: map[string]any{"n": 1}, have: map[string]any{"n": "1"}, match: false},
		{name: "NaN equals NaN", wantV: map[string]*structpb.Value{"n": nan}, haveV: map[string]*structpb.Value{"n": nan}, match: true},
		{name: "NaN is not a number", wantV: map[string]*structpb.Value{"n": nan}, have: map[string]any{"n": 1}, match: false},
		{name: "bool", want: map[string]any{"b": true}, have: map[string]any{"b": true}, match: true},
		{name: "bool differs", want: map[string]any{"b": true}, have: map[string]any{"b": false}, match: false},
		{name: "bool is not string", want: map[string]any{"b": true}, have: map[string]any{"b": "true"}, match: false},
		{name: "null", want: map[string]any{"z": nil}, have: map[string]any{"z": nil}, match: true},
		{name: "null is not empty string", want: map[string]any{"z": nil}, have: map[string]any{"z": ""}, match: false},
		{name: "empty string", want: map[string]any{"s": ""}, have: map[string]any{"s": ""}, match: true},
		{name: "unset kind", wantV: map[string]*structpb.Value{"u": unset}, haveV: map[string]*structpb.Value{"u": unset}, match: true},
		{name: "unset kind is not empty string", wantV: map[string]*structpb.Value{"u": unset}, have: map[string]any{"u": ""}, match: false},
		{name: "empty string is not unset kind", want: map[string]any{"u": ""}, haveV: map[string]*structpb.Value{"u": unset}, match: false},
		{name: "struct", want: map[string]any{"s": map[string]any{"a": "1", "b": 2}}, have: map[string]any{"s": map[string]any{"b": 2, "a": "1"}}, match: true},
		{name: "struct with extra key", want: map[string]any{"s": map[string]any{"a": "1"}}, have: map[string]any{"s": map[string]any{"a": "1", "b": 2}}, match: false},
		{name: "struct missing key", want: map[string]any{"s": map[string]any{"a": "1", "b": 2}}, have: map[string]any{"s": map[string]any{"a": "1"}}, match: false},
		{name: "struct same size other key", want: map[string]any{"s": map[string]any{"a": "1"}}, have: map[string]any{"s": map[string]any{"c": "1"}}, match: false},
		{name: "empty struct", want: map[string]any{"s": map[string]any{}}, have: map[string]any{"s": map[string]any{}}, match: true},
		{name: "struct is not list", want: map[string]any{"s": map[string]any{}}, have: map[string]any{"s": []any{}}, match: false},
		{name: "list", want: map[string]any{"l": []any{"a", 1, true}}, have: map[string]any{"l": []any{"a", 1, true}}, match: true},
		{name: "list order", want: map[string]any{"l": []any{"a", "b"}}, have: map[string]any{"l": []any{"b", "a"}}, match: false},
		{name: "list length", want: map[string]any{"l": []any{"a"}}, have: map[string]any{"l": []any{"a", "a"}}, match: false},
		{name: "nested", want: map[string]any{"x": []any{map[string]any{"k": []any{nil}}}}, have: map[string]any{"x": []any{map[string]any{"k": []any{nil}}}}, match: true},
		{name: "nested differs", want: map[string]any{"x": []any{map[string]any{"k": []any{nil}}}}, have: map[string]any{"x": []any{map[string]any{"k": []any{false}}}}, match: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := mustStruct(t, tc.want)
			for k, v := range tc.wantV {
				want.Fields[k] = v
			}
			have := mustStruct(t, tc.have)
			for k, v := range tc.haveV {
				have.Fields[k] = v
			}
			m := compileMatch(want)
			if got := m.matches(have.GetFields()); got != tc.match {
				t.Errorf("compiled match of %v against %v = %v, want %v", want, have, got, tc.match)
			}
			if ref := equalMatch(want, have.GetFields()); ref != tc.match {
				t.Errorf("case is wrong: proto.Equal matching says %v", ref)
			}
		})
	}
}

// tlsSocket is Istio's ISTIO_MUTUAL socket as far as PlaintextOnly looks
// at it: a TLS socket it refuses.
func tlsSocket() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"}},
	}
}

// autoMTLSCluster is a cluster with Istio's auto mTLS matches, decoded
// from its wire form as the xDS client gives it.
func autoMTLSCluster(t testing.TB) *clusterv3.Cluster {
	t.Helper()
	c := &clusterv3.Cluster{
		Name:                 "outbound|80||svc.ns.svc.cluster.local",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{ServiceName: "outbound|80||svc.ns.svc.cluster.local"},
		ConnectTimeout:       durationpb.New(time.Second),
		TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
			{Name: "tlsMode-istio", Match: mustStruct(t, map[string]any{"tlsMode": "istio"}), TransportSocket: tlsSocket()},
			{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer"}},
		},
	}
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out := &clusterv3.Cluster{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func endpointWith(t testing.TB, md map[string]any) *host.Endpoint {
	t.Helper()
	ep := &host.Endpoint{}
	if md != nil {
		ep.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{upstream.TransportSocketMatchKey: mustStruct(t, md)}}
	}
	return ep
}

func compileSockets(t testing.TB, pc *clusterv3.Cluster) sockets {
	t.Helper()
	c, err := upstream.Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSockets(c.TransportSocket, PlaintextOnly)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkAutoMTLS checks the socket choice of Istio's auto mTLS matches.
func checkAutoMTLS(t *testing.T, s *sockets) {
	t.Helper()
	for _, tc := range []struct {
		md          map[string]any
		name        string
		unsupported bool
	}{
		{md: map[string]any{"tlsMode": "istio"}, name: "tlsMode-istio", unsupported: true},
		{md: map[string]any{"tlsMode": "disabled"}, name: "tlsMode-disabled"},
		{md: nil, name: "tlsMode-disabled"},
	} {
		sk := s.forEndpoint(endpointWith(t, tc.md))
		if sk.name != tc.name || errors.Is(sk.err, pool.ErrUnsupportedTransport) != tc.unsupported || sk.transport != nil {
			t.Errorf("metadata %v: socket %q (err %v), want %q (unsupported %v)", tc.md, sk.name, sk.err, tc.name, tc.unsupported)
		}
	}
}

// TestSocketsIndependentOfCluster: mutating the decoded Cluster after
// compilation changes nothing, and none of its strings is kept.
func TestSocketsIndependentOfCluster(t *testing.T) {
	pc := autoMTLSCluster(t)
	s := compileSockets(t, pc)
	checkAutoMTLS(t, &s)

	m := pc.TransportSocketMatches[0]
	for _, p := range []struct{ kept, decoded string }{
		{s.matches[0].name, m.GetName()},
		{s.matches[0].match[0].key, "tlsMode"},
		{s.matches[0].match[0].val.str, m.GetMatch().GetFields()["tlsMode"].GetStringValue()},
	} {
		if unsafe.StringData(p.kept) == unsafe.StringData(p.decoded) {
			t.Errorf("compiled sockets keep the decoded message's string %q", p.kept)
		}
	}
	for k := range m.GetMatch().GetFields() {
		if unsafe.StringData(s.matches[0].match[0].key) == unsafe.StringData(k) {
			t.Errorf("compiled sockets keep the decoded message's key %q", k)
		}
	}

	// Scribble over everything the matches were compiled from.
	m.Name = "renamed"
	m.Match.Fields["tlsMode"] = structpb.NewStringValue("disabled")
	m.Match.Fields["extra"] = structpb.NewBoolValue(true)
	pc.TransportSocketMatches[1].Name = "renamed too"
	pc.TransportSocketMatches[1].Match.Fields = map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("never")}
	pc.TransportSocketMatches[0], pc.TransportSocketMatches[1] = pc.TransportSocketMatches[1], pc.TransportSocketMatches[0]
	checkAutoMTLS(t, &s)
}

// TestSocketsKeepNoMessage: once the Cluster is dropped, its
// transport_socket_matches are collected although the compiled sockets
// live on.
func TestSocketsKeepNoMessage(t *testing.T) {
	compile := func() (sockets, weak.Pointer[structpb.Struct], weak.Pointer[clusterv3.Cluster_TransportSocketMatch]) {
		pc := autoMTLSCluster(t)
		return compileSockets(t, pc), weak.Make(pc.TransportSocketMatches[0].Match), weak.Make(pc.TransportSocketMatches[0])
	}
	s, match, entry := compile()
	deadline := time.Now().Add(5 * time.Second)
	for match.Value() != nil || entry.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the decoded transport_socket_matches are still reachable after the Cluster was dropped")
		}
		runtime.GC()
	}
	checkAutoMTLS(t, &s)
	runtime.KeepAlive(s)
}

func TestForEndpointAllocatesNothing(t *testing.T) {
	s := compileSockets(t, autoMTLSCluster(t))
	eps := []*host.Endpoint{endpointWith(t, map[string]any{"tlsMode": "istio"}), endpointWith(t, map[string]any{"tlsMode": "disabled"}), endpointWith(t, nil)}
	if n := testing.AllocsPerRun(100, func() {
		for _, ep := range eps {
			s.forEndpoint(ep)
		}
	}); n != 0 {
		t.Errorf("choosing a socket allocates %v times", n)
	}
}

// BenchmarkForEndpoint is the socket choice per dial; Reference is the
// same choice with proto.Equal, as it was made before matches were
// compiled.
func BenchmarkForEndpoint(b *testing.B) {
	pc := autoMTLSCluster(b)
	s := compileSockets(b, pc)
	ep := endpointWith(b, map[string]any{"tlsMode": "disabled"})
	b.Run("Compiled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.forEndpoint(ep)
		}
	})
	b.Run("Reference", func(b *testing.B) {
		b.ReportAllocs()
		md := ep.Metadata.GetFilterMetadata()[upstream.TransportSocketMatchKey].GetFields()
		for b.Loop() {
			for _, m := range pc.GetTransportSocketMatches() {
				if equalMatch(m.GetMatch(), md) {
					break
				}
			}
		}
	})
}
