package server

import (
	"slices"
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/trellismesh/trellis/internal/xds"
)

// baseWorld serves two clusters with endpoints, one listener, one route.
func baseWorld(tag string) world {
	return world{
		xds.ClusterType:  {"c1": tag, "c2": tag},
		xds.EndpointType: {"c1": tag, "c2": tag},
		xds.ListenerType: {"l1": tag},
		xds.RouteType:    {"r1": tag},
	}
}

// publish updates the server and waits until the snapshot is current.
func (h *harness) publish(version string, w world, req PushRequest) {
	h.t.Helper()
	h.update(version, w, req)
	eventually(h.t, "snapshot "+version+" dispatched", func() bool {
		s := h.srv.current()
		return s != nil && s.Version == version
	})
}

// handshake runs the initial CDS → EDS → LDS → RDS exchange with ACKs and
// returns the responses by type.
func handshake(t *testing.T, c *sotwClient, id string) map[string]*discovery.DiscoveryResponse {
	t.Helper()
	got := map[string]*discovery.DiscoveryResponse{}
	steps := []struct {
		typeURL string
		names   []string
	}{
		{xds.ClusterType, nil},
		{xds.EndpointType, []string{"c1", "c2"}},
		{xds.ListenerType, nil},
		{xds.RouteType, []string{"r1"}},
	}
	for k, s := range steps {
		req := &discovery.DiscoveryRequest{TypeUrl: s.typeURL, ResourceNames: s.names}
		if k == 0 {
			req.Node = node(id)
		}
		c.send(req)
		r := c.recv()
		if r.GetTypeUrl() != s.typeURL {
			t.Fatalf("step %d: got type %s, want %s", k, r.GetTypeUrl(), s.typeURL)
		}
		if r.GetNonce() == "" || r.GetVersionInfo() == "" {
			t.Fatalf("step %d: response without nonce or version: %v", k, r)
		}
		c.send(ack(r, s.names...))
		got[s.typeURL] = r
	}
	return got
}

func TestSotwHandshakeAndPush(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	id := sidecarID("10.0.0.1", "p1", "ns1")
	c := h.sotw()
	got := handshake(t, c, id)

	wantNames := map[string][]string{
		xds.ClusterType: {"c1", "c2"}, xds.EndpointType: {"c1", "c2"},
		xds.ListenerType: {"l1"}, xds.RouteType: {"r1"},
	}
	for typeURL, want := range wantNames {
		if n := names(t, got[typeURL]); !slices.Equal(n, want) {
			t.Errorf("%s: names %v, want %v", xds.ShortName(typeURL), n, want)
		}
	}
	nonces := map[string]bool{}
	for _, r := range got {
		nonces[r.GetNonce()] = true
	}
	if len(nonces) != 4 {
		t.Errorf("nonces are not unique: %v", nonces)
	}
	eventually(t, "all types ACKed in Clients()", func() bool {
		cs := h.srv.Clients()
		if len(cs) != 1 || len(cs[0].Types) != 4 {
			return false
		}
		for _, ts := range cs[0].Types {
			if !ts.Acked || ts.AckedVersion != got[ts.TypeURL].GetVersionInfo() || ts.SentNonce != got[ts.TypeURL].GetNonce() {
				return false
			}
		}
		return cs[0].ProxyID == id && !cs[0].Delta
	})

	// Clusters and listeners change: CDS then LDS, nothing else.
	w := baseWorld("a")
	w[xds.ClusterType]["c3"] = "a"
	w[xds.ListenerType]["l1"] = "b"
	h.update("v2", w, PushRequest{Full: true})
	cds := c.recv()
	if cds.GetTypeUrl() != xds.ClusterType || !slices.Equal(names(t, cds), []string{"c1", "c2", "c3"}) {
		t.Fatalf("want CDS c1,c2,c3, got %s %v", cds.GetTypeUrl(), names(t, cds))
	}
	if cds.GetVersionInfo() == got[xds.ClusterType].GetVersionInfo() {
		t.Error("changed CDS kept its version")
	}
	lds := c.recv()
	if lds.GetTypeUrl() != xds.ListenerType || contents(t, lds) != "l1=b" {
		t.Fatalf("want LDS l1=b, got %s %s", lds.GetTypeUrl(), contents(t, lds))
	}
	c.send(ack(cds))
	// The proxy now asks for endpoints of c3: answered at once.
	c.send(ack(got[xds.EndpointType], "c1", "c2", "c3"))
	c.send(ack(lds))
	eds := c.recv()
	if eds.GetTypeUrl() != xds.EndpointType || !slices.Equal(names(t, eds), []string{"c1", "c2"}) {
		// c3 has no endpoints in the world: only c1, c2.
		t.Fatalf("want EDS c1,c2, got %s %v", eds.GetTypeUrl(), names(t, eds))
	}
	if eds.GetNonce() == got[xds.EndpointType].GetNonce() {
		t.Error("nonce reused")
	}
	eventually(t, "convergence of the CDS and LDS pushes observed", func() bool {
		return metric(t, h.reg, "pilot_proxy_convergence_time", nil) == 2
	})
}

func TestSotwFullPushOrder(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	c := h.sotw()
	handshake(t, c, sidecarID("10.0.0.1", "p1", "ns1"))
	h.update("v2", baseWorld("b"), PushRequest{Full: true})
	var order []string
	for range 4 {
		r := c.recv()
		order = append(order, xds.ShortName(r.GetTypeUrl()))
		c.send(ack(r))
	}
	if want := []string{"CDS", "EDS", "LDS", "RDS"}; !slices.Equal(order, want) {
		t.Fatalf("push order %v, want %v", order, want)
	}
}

func TestSotwNACKNotResent(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	id := sidecarID("10.0.0.1", "p1", "ns1")
	c := h.sotw()
	handshake(t, c, id)

	// v2 changes clusters; the proxy rejects them.
	w2 := baseWorld("a")
	w2[xds.ClusterType]["c1"] = "bad"
	h.update("v2", w2, PushRequest{Full: true})
	cds := c.recv()
	if cds.GetTypeUrl() != xds.ClusterType {
		t.Fatalf("got %s", cds.GetTypeUrl())
	}
	nack := ack(cds)
	nack.VersionInfo = "previous"
	nack.ErrorDetail = &status.Status{Code: 3, Message: "cluster c1: invalid"}
	c.send(nack)
	eventually(t, "NACK recorded", func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[0].LastNACK == "cluster c1: invalid" && !cs[0].Types[0].Acked
	})
	if n := metric(t, h.reg, "pilot_total_xds_rejects", map[string]string{"type": "cds"}); n != 1 {
		t.Errorf("pilot_total_xds_rejects{type=cds} = %v, want 1", n)
	}

	// v3: same clusters as v2, listeners change. CDS must not be resent:
	// the next response is LDS (CDS would come first).
	w3 := baseWorld("a")
	w3[xds.ClusterType]["c1"] = "bad"
	w3[xds.ListenerType]["l1"] = "new"
	h.update("v3", w3, PushRequest{Full: true})
	if r := c.recv(); r.GetTypeUrl() != xds.ListenerType {
		t.Fatalf("after NACK got %s %s, want LDS only", xds.ShortName(r.GetTypeUrl()), contents(t, r))
	} else {
		c.send(ack(r))
	}

	// v4 fixes the cluster: sent.
	w4 := baseWorld("a")
	w4[xds.ListenerType]["l1"] = "new"
	w4[xds.ClusterType]["c1"] = "fixed"
	h.update("v4", w4, PushRequest{Full: true})
	r := c.recv()
	if r.GetTypeUrl() != xds.ClusterType || !strings.Contains(contents(t, r), "c1=fixed") {
		t.Fatalf("got %s %s, want fixed CDS", xds.ShortName(r.GetTypeUrl()), contents(t, r))
	}
	c.send(ack(r))
	eventually(t, "ACK after NACK", func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[0].Acked && cs[0].Types[0].LastNACK != ""
	})
}

func TestSotwStaleNonceIgnored(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	c := h.sotw()
	got := handshake(t, c, sidecarID("10.0.0.1", "p1", "ns1"))
	oldEDS := got[xds.EndpointType]

	// A push sends a new EDS response (new nonce).
	h.update("v2", baseWorld("b"), PushRequest{Full: false})
	eds := c.recv()
	if eds.GetTypeUrl() != xds.EndpointType {
		t.Fatalf("got %s", eds.GetTypeUrl())
	}
	// A request with the old nonce changing the subscription is ignored...
	c.send(ack(oldEDS, "c1"))
	// ...while one with the current nonce is honoured.
	c.send(ack(eds, "c2"))
	r := c.recv()
	if r.GetTypeUrl() != xds.EndpointType || !slices.Equal(names(t, r), []string{"c2"}) {
		t.Fatalf("got %s %v, want EDS [c2]", xds.ShortName(r.GetTypeUrl()), names(t, r))
	}
	if n := metric(t, h.reg, "pilot_xds_expired_nonce", map[string]string{"type": "eds"}); n != 1 {
		t.Errorf("pilot_xds_expired_nonce = %v, want 1", n)
	}
}

func TestSotwRequestBeforeFirstSnapshot(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.sotw()
	c.send(&discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.1", "p1", "ns1")), TypeUrl: xds.ClusterType})
	c.send(&discovery.DiscoveryRequest{TypeUrl: xds.EndpointType, ResourceNames: []string{"c1"}})
	eventually(t, "connection registered", func() bool { return len(h.srv.Clients()) == 1 })
	// Only an endpoint change: CDS is still answered since it is pending.
	h.update("v1", baseWorld("a"), PushRequest{Full: false})
	cds, eds := c.recv(), c.recv()
	if cds.GetTypeUrl() != xds.ClusterType || eds.GetTypeUrl() != xds.EndpointType {
		t.Fatalf("got %s, %s", cds.GetTypeUrl(), eds.GetTypeUrl())
	}
	if !slices.Equal(names(t, eds), []string{"c1"}) {
		t.Fatalf("EDS %v", names(t, eds))
	}
}

func TestSotwUnknownTypeIgnored(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	c := h.sotw()
	c.send(&discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.1", "p1", "ns1")), TypeUrl: "type.googleapis.com/example.Unknown"})
	c.send(&discovery.DiscoveryRequest{TypeUrl: xds.ListenerType})
	if r := c.recv(); r.GetTypeUrl() != xds.ListenerType {
		t.Fatalf("got %s, want LDS (unknown type ignored)", r.GetTypeUrl())
	}
	cs := h.srv.Clients()
	if len(cs) != 1 || len(cs[0].Types) != 1 {
		t.Fatalf("clients %+v: unknown type must keep no state", cs)
	}
}
