package upstream_test

import (
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
)

// retainedRule gives the reviews cluster every opaque part Retained drops
// or copies: mTLS transport sockets, TCP keepalive and HTTP/2 options.
var retainedRule = reviewsRule(`    tls: {mode: ISTIO_MUTUAL}
    connectionPool:
      tcp: {tcpKeepalive: {time: 60s, probes: 3}}
      http: {h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 64}`)

// decodedCluster is the reviews cluster as the xDS client holds it: decoded
// from the wire.
func decodedCluster(t *testing.T) *clusterv3.Cluster {
	t.Helper()
	b, err := proto.Marshal(generate(t, retainedRule, "").cluster(t, reviewsCluster))
	if err != nil {
		t.Fatal(err)
	}
	pc := &clusterv3.Cluster{}
	if err := proto.Unmarshal(b, pc); err != nil {
		t.Fatal(err)
	}
	return pc
}

// retainedRefs compiles a decoded cluster and returns its Retained copy
// with weak pointers to the decoded message, its opaque parts, the
// compiled HTTP/2 options and the name's bytes.
func retainedRefs(t *testing.T) (*upstream.Cluster, map[string]func() bool) {
	pc := decodedCluster(t)
	c, err := upstream.Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	if c.TransportSocket.Default == nil && len(c.TransportSocket.Matches) == 0 || c.ConnectionOptions == nil || c.HTTP.HTTP2 == nil {
		t.Fatalf("the fixture lacks opaque parts: %+v", c)
	}
	r := c.Retained()
	if c.ConnectionOptions == nil || c.HTTP.HTTP2 == nil {
		t.Fatal("Retained modified the compiled cluster")
	}
	cluster := weak.Make(pc)
	opts := weak.Make(pc.GetUpstreamConnectionOptions())
	socket := weak.Make(pc.GetTransportSocket())
	h2 := weak.Make(c.HTTP.HTTP2)
	name := weak.Make(unsafe.StringData(pc.GetName()))
	return r, map[string]func() bool{
		"Cluster":                     func() bool { return cluster.Value() != nil },
		"upstream_connection_options": func() bool { return opts.Value() != nil },
		"transport_socket":            func() bool { return socket.Value() != nil },
		"HTTP2 options":               func() bool { return h2.Value() != nil },
		"name":                        func() bool { return name.Value() != nil },
	}
}

// TestRetainedKeepsNothingOfTheMessage: the Retained copy answers what
// the manager reads after the build, and the decoded message (with the
// compiled form's references into it) is collected while it lives.
func TestRetainedKeepsNothingOfTheMessage(t *testing.T) {
	r, refs := retainedRefs(t)
	live := func() []string {
		var out []string
		for name, alive := range refs {
			if alive() {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(live()) > 0 && time.Now().Before(deadline) {
		runtime.GC()
	}
	if l := live(); len(l) > 0 {
		t.Errorf("the retained cluster keeps parts of the decoded message alive: %v", l)
	}
	wantEq(t, "name", r.Name, reviewsCluster)
	wantEq(t, "eds service", r.EDSServiceName, reviewsCluster)
	wantEq(t, "protocol", r.HTTP.Protocol, upstream.HTTP2)
	wantEq(t, "max streams", r.HTTP.HTTP2.GetMaxConcurrentStreams().GetValue(), uint32(64))
	wantEq(t, "transport sockets dropped", r.TransportSocket.Default == nil && r.TransportSocket.Matches == nil, true)
	wantEq(t, "connection options dropped", r.ConnectionOptions == nil, true)
	runtime.KeepAlive(r)
}

// TestRetainedOutlivesMessageChanges: changing the compiled HTTP/2
// options after Retained leaves the retained copy as it was.
func TestRetainedOutlivesMessageChanges(t *testing.T) {
	c, err := upstream.Compile(decodedCluster(t))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Retained()
	c.HTTP.HTTP2.MaxConcurrentStreams.Value = 1
	c.HTTP.HTTP2.ConnectionKeepalive = &corev3.KeepaliveSettings{}
	wantEq(t, "max streams", r.HTTP.HTTP2.GetMaxConcurrentStreams().GetValue(), uint32(64))
	wantEq(t, "keepalive", r.HTTP.HTTP2.GetConnectionKeepalive() == nil, true)
}
