package xdsclient

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// istioCluster is an EDS cluster with metadata as Istio's generator
// writes it (the bulk of a decoded Cluster is such Struct maps).
func istioCluster(i int) *clusterv3.Cluster {
	host := fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local", i, i%10)
	name := "outbound|80||" + host
	md, err := structpb.NewStruct(map[string]any{
		"services":              []any{map[string]any{"host": host, "name": fmt.Sprintf("svc-%d", i), "namespace": fmt.Sprintf("ns-%d", i%10)}},
		"default_original_port": 80,
		"config":                "/apis/networking.istio.io/v1/namespaces/default/destination-rule/dr",
	})
	if err != nil {
		panic(err)
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: name, EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
		ConnectTimeout: durationpb.New(10 * time.Second),
		Metadata:       &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": md}},
	}
}

// istioAssignment has five endpoints with Istio's workload metadata.
func istioAssignment(name string, i int) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	lle := &endpointv3.LocalityLbEndpoints{}
	for j := range 5 {
		wl, err := structpb.NewStruct(map[string]any{"workload": fmt.Sprintf("svc-%d-v1-%d;ns-%d;svc-%d;v1;Kubernetes", i, j, i%10, i)})
		if err != nil {
			panic(err)
		}
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": wl}},
		})
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{lle}
	return cla
}

// deltaBytes is a serialized DeltaDiscoveryResponse carrying msgs, each
// versioned name@nonce.
func deltaBytes(t testing.TB, typeURL, nonce string, names []string, msgs []proto.Message) []byte {
	t.Helper()
	r := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, Nonce: nonce, SystemVersionInfo: "sys-" + nonce}
	for i, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		r.Resources = append(r.Resources, &discoveryv3.Resource{Name: names[i], Version: names[i] + "@" + nonce, Resource: a})
	}
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// machine is a delta state machine without I/O, fed serialized responses.
type machine struct {
	t  testing.TB
	st *state
}

func newMachine(t testing.TB, c Consumer) *machine {
	cfg := &Config{Consumer: c, Metrics: nopMetrics{}, Logger: slog.New(slog.DiscardHandler), InitialFetchTimeout: -1,
		Node: &corev3.Node{Id: "sidecar~10.0.0.1~a.default~default.svc.cluster.local"}}
	st := newState(delta{}, cfg, newBoard("test", Delta), time.Now())
	st.startStream(time.Now())
	return &machine{t: t, st: st}
}

// feed handles one response and returns the error_detail of its reply
// ("" for an ACK).
func (m *machine) feed(b []byte) string {
	m.t.Helper()
	r, err := delta{}.decode(b)
	if err != nil {
		m.t.Fatal(err)
	}
	m.st.handle(r, time.Now())
	var detail string
	for _, req := range m.st.takeOut() {
		if d := req.(*discoveryv3.DeltaDiscoveryRequest); d.GetResponseNonce() == r.nonce {
			detail = d.GetErrorDetail().GetMessage()
		}
	}
	return detail
}

// TestSetVersionsChangedAndDecoding checks what a consumer sees of a Set:
// versions, Changed against the last accepted set, Removed, messages of
// the response as they were decoded, others decoded on demand from the
// kept bytes, and nothing once Apply has returned.
func TestSetVersionsChangedAndDecoding(t *testing.T) {
	var sets []*Set
	type seen struct {
		changed          map[string]bool
		versions         map[string]string
		fromResponse     map[string]bool
		removed          []string
		decodedOnDemand  string
		onDemandName     string
		onDemandSameCopy bool
	}
	var got []seen
	m := newMachine(t, ConsumerFunc(func(s *Set) map[string]error {
		sets = append(sets, s)
		v := seen{changed: map[string]bool{}, versions: map[string]string{}, fromResponse: map[string]bool{}, removed: s.Removed()}
		for _, name := range s.Names() {
			v.changed[name] = s.Changed(name)
			v.versions[name] = s.Version(name)
			_, v.fromResponse[name] = s.msgs[name]
		}
		for _, name := range s.Names() {
			if v.fromResponse[name] {
				continue
			}
			msg, err := s.Msg(name)
			if err != nil {
				t.Errorf("Msg(%s): %v", name, err)
				continue
			}
			again, _ := s.Msg(name)
			v.onDemandName, v.decodedOnDemand = name, msg.(*clusterv3.Cluster).GetName()
			v.onDemandSameCopy = again == msg
		}
		got = append(got, v)
		return nil
	}))
	a, b, c := istioCluster(1), istioCluster(2), istioCluster(3)
	if d := m.feed(deltaBytes(t, ClusterType, "1", []string{a.Name, b.Name}, []proto.Message{a, b})); d != "" {
		t.Fatalf("first response NACKed: %s", d)
	}
	b.ConnectTimeout = durationpb.New(time.Second)
	if d := m.feed(deltaBytes(t, ClusterType, "2", []string{b.Name, c.Name}, []proto.Message{b, c})); d != "" {
		t.Fatalf("second response NACKed: %s", d)
	}
	r := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: ClusterType, Nonce: "3", RemovedResources: []string{b.Name}}
	rb, _ := proto.Marshal(r)
	if d := m.feed(rb); d != "" {
		t.Fatalf("removal NACKed: %s", d)
	}
	if len(got) != 3 {
		t.Fatalf("%d Apply calls, want 3", len(got))
	}

	first, second, third := got[0], got[1], got[2]
	if !first.changed[a.Name] || !first.changed[b.Name] || !first.fromResponse[a.Name] || first.onDemandName != "" {
		t.Errorf("first set %+v: want both new, from the response, nothing decoded on demand", first)
	}
	if second.changed[a.Name] || !second.changed[b.Name] || !second.changed[c.Name] {
		t.Errorf("second set changed %v: want a unchanged, b (new version) and c (new) changed", second.changed)
	}
	if second.versions[a.Name] != a.Name+"@1" || second.versions[b.Name] != b.Name+"@2" {
		t.Errorf("second set versions %v: want the server's per-resource versions", second.versions)
	}
	if second.fromResponse[a.Name] || !second.fromResponse[b.Name] {
		t.Errorf("second set: a from the response %v, b %v; want only the response's resources decoded", second.fromResponse[a.Name], second.fromResponse[b.Name])
	}
	if second.onDemandName != a.Name || second.decodedOnDemand != a.Name || !second.onDemandSameCopy {
		t.Errorf("second set decoded %q on demand as %q (same copy on the second call: %v); want a, decoded once",
			second.onDemandName, second.decodedOnDemand, second.onDemandSameCopy)
	}
	if !slices.Equal(third.removed, []string{b.Name}) || third.changed[a.Name] || third.changed[c.Name] {
		t.Errorf("third set: removed %v, changed %v; want b removed and nothing changed", third.removed, third.changed)
	}
	for i, s := range sets {
		if _, err := s.Msg(a.Name); err == nil {
			t.Errorf("set %d: Msg works after Apply returned", i)
		}
	}
}

// TestNoDecodedMessagesKept: after Apply returns, nothing in the client
// (accepted sets, status board, the Set) holds a decoded message: weak
// pointers to every message the consumer saw are cleared by a GC.
func TestNoDecodedMessagesKept(t *testing.T) {
	var ptrs []weak.Pointer[clusterv3.Cluster]
	m := newMachine(t, ConsumerFunc(func(s *Set) map[string]error {
		for _, name := range s.Names() {
			msg, err := s.Msg(name)
			if err != nil {
				t.Error(err)
				continue
			}
			ptrs = append(ptrs, weak.Make(msg.(*clusterv3.Cluster)))
		}
		return nil
	}))
	var names []string
	var msgs []proto.Message
	for i := range 20 {
		c := istioCluster(i)
		names, msgs = append(names, c.Name), append(msgs, c)
	}
	if d := m.feed(deltaBytes(t, ClusterType, "1", names, msgs)); d != "" {
		t.Fatalf("NACK: %s", d)
	}
	// The second response changes one cluster: the other 19 are decoded
	// from the kept bytes on demand.
	msgs[0].(*clusterv3.Cluster).ConnectTimeout = durationpb.New(time.Second)
	if d := m.feed(deltaBytes(t, ClusterType, "2", names[:1], msgs[:1])); d != "" {
		t.Fatalf("NACK: %s", d)
	}
	if len(ptrs) != 40 {
		t.Fatalf("consumer saw %d messages, want 40", len(ptrs))
	}
	runtime.GC()
	runtime.GC()
	alive := 0
	for _, p := range ptrs {
		if p.Value() != nil {
			alive++
		}
	}
	if alive > 0 {
		t.Errorf("%d of %d decoded messages still reachable after Apply returned", alive, len(ptrs))
	}
	if got := len(m.st.types[cds].accepted); got != 20 {
		t.Errorf("accepted set has %d clusters, want 20", got)
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestAcceptedSetsHeap applies 1,000 Istio-like clusters and their
// assignments (five endpoints each) and compares the heap the client
// keeps for them with the heap the same resources take decoded: the
// client keeps the serialized bodies only, less than a third of it
// (measured: about a fifth to a sixth).
func TestAcceptedSetsHeap(t *testing.T) {
	const n = 1000
	names := make([]string, n)
	clusters := make([]proto.Message, n)
	clas := make([]proto.Message, n)
	for i := range n {
		c := istioCluster(i)
		names[i], clusters[i], clas[i] = c.Name, c, istioAssignment(c.Name, i)
	}
	cdsBytes := deltaBytes(t, ClusterType, "1", names, clusters)
	edsBytes := deltaBytes(t, EndpointType, "2", names, clas)
	clusters, clas = nil, nil

	m := newMachine(t, ConsumerFunc(func(s *Set) map[string]error {
		for _, name := range s.Names() {
			if _, err := s.Msg(name); err != nil {
				return map[string]error{name: err}
			}
		}
		return nil
	}))
	before := liveHeap()
	if d := m.feed(cdsBytes); d != "" {
		t.Fatalf("CDS NACK: %s", d)
	}
	if d := m.feed(edsBytes); d != "" {
		t.Fatalf("EDS NACK: %s", d)
	}
	kept := int64(liveHeap()) - int64(before)
	if len(m.st.types[eds].accepted) != n {
		t.Fatalf("%d assignments accepted, want %d", len(m.st.types[eds].accepted), n)
	}

	// The same resources decoded, as the client kept them before.
	before = liveHeap()
	decoded := make([]proto.Message, 0, 2*n)
	for _, b := range [][]byte{cdsBytes, edsBytes} {
		r, err := delta{}.decode(b)
		if err != nil {
			t.Fatal(err)
		}
		rt := m.st.typeOf(r.typeURL).rt
		for _, raw := range r.resources {
			msg := rt.newMsg()
			if err := proto.Unmarshal(raw.body.GetValue(), msg); err != nil {
				t.Fatal(err)
			}
			decoded = append(decoded, msg)
		}
	}
	full := int64(liveHeap()) - int64(before)
	runtime.KeepAlive(decoded)
	runtime.KeepAlive(m)
	t.Logf("heap kept by the client for %d clusters and %d assignments: %d KiB; decoded: %d KiB", n, n, kept/1024, full/1024)
	if kept*3 > full {
		t.Errorf("the client keeps %d KiB for the sets, more than a third of the %d KiB they take decoded", kept/1024, full/1024)
	}
}
