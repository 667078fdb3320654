package server

import (
	"fmt"
	"slices"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/trellismesh/trellis/internal/xds"
)

func dreq(typeURL string, nonce string) *discovery.DeltaDiscoveryRequest {
	return &discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: nonce}
}

func expectDelta(t *testing.T, r *discovery.DeltaDiscoveryResponse, typeURL string, resources, removed []string) {
	t.Helper()
	rm := slices.Clone(r.GetRemovedResources())
	slices.Sort(rm)
	if r.GetTypeUrl() != typeURL || !slices.Equal(deltaNames(r), resources) || !slices.Equal(rm, removed) {
		t.Fatalf("got %s resources %v removed %v; want %s resources %v removed %v",
			xds.ShortName(r.GetTypeUrl()), deltaNames(r), rm, xds.ShortName(typeURL), resources, removed)
	}
	if r.GetNonce() == "" {
		t.Fatal("delta response without nonce")
	}
}

func versionOf(r *discovery.DeltaDiscoveryResponse, name string) string {
	for _, res := range r.GetResources() {
		if res.GetName() == name {
			return res.GetVersion()
		}
	}
	return ""
}

func TestDeltaSubscriptionsAndRemovals(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	id := sidecarID("10.0.0.1", "p1", "ns1")
	c := h.delta()

	first := dreq(xds.ClusterType, "")
	first.Node = node(id)
	c.send(first)
	cds := c.recv()
	expectDelta(t, cds, xds.ClusterType, []string{"c1", "c2"}, nil)
	c.send(dreq(xds.ClusterType, cds.GetNonce()))

	sub := dreq(xds.EndpointType, "")
	sub.ResourceNamesSubscribe = []string{"c2", "c1", "missing"}
	c.send(sub)
	eds := c.recv()
	// A name that does not exist is reported as removed.
	expectDelta(t, eds, xds.EndpointType, []string{"c1", "c2"}, []string{"missing"})
	c.send(dreq(xds.EndpointType, eds.GetNonce()))

	// Unsubscribing needs no response.
	unsub := dreq(xds.EndpointType, "")
	unsub.ResourceNamesUnsubscribe = []string{"c2", "missing"}
	c.send(unsub)

	// v2: c2 is gone from clusters; both endpoints change. The proxy gets
	// the CDS removal and EDS for c1 only (c2 is unsubscribed).
	w2 := baseWorld("a")
	delete(w2[xds.ClusterType], "c2")
	w2[xds.EndpointType]["c1"] = "b"
	w2[xds.EndpointType]["c2"] = "b"
	h.update("v2", w2, PushRequest{Full: true})
	cds2 := c.recv()
	expectDelta(t, cds2, xds.ClusterType, nil, []string{"c2"})
	eds2 := c.recv()
	expectDelta(t, eds2, xds.EndpointType, []string{"c1"}, nil)
	c.send(dreq(xds.ClusterType, cds2.GetNonce()))
	c.send(dreq(xds.EndpointType, eds2.GetNonce()))

	// Subscribing again to a subscribed name resends it.
	re := dreq(xds.EndpointType, "")
	re.ResourceNamesSubscribe = []string{"c1"}
	c.send(re)
	expectDelta(t, c.recv(), xds.EndpointType, []string{"c1"}, nil)

	// v3: c1's endpoints disappear: removed.
	w3 := baseWorld("a")
	delete(w3[xds.ClusterType], "c2")
	delete(w3[xds.EndpointType], "c1")
	h.update("v3", w3, PushRequest{Full: false})
	expectDelta(t, c.recv(), xds.EndpointType, nil, []string{"c1"})

	eventually(t, "Clients() shows the delta stream", func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Delta && len(cs[0].Types) == 2 && cs[0].Types[0].SentVersion == "v2"
	})
}

func TestDeltaInitialResourceVersionsOnReconnect(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	id := sidecarID("10.0.0.1", "p1", "ns1")

	c := h.delta()
	first := dreq(xds.ClusterType, "")
	first.Node = node(id)
	c.send(first)
	cds := c.recv()
	expectDelta(t, cds, xds.ClusterType, []string{"c1", "c2"}, nil)
	sub := dreq(xds.EndpointType, "")
	sub.ResourceNamesSubscribe = []string{"c1", "c2"}
	c.send(sub)
	eds := c.recv()
	expectDelta(t, eds, xds.EndpointType, []string{"c1", "c2"}, nil)
	c.close()
	eventually(t, "old stream cleaned up", func() bool { return len(h.srv.Clients()) == 0 })

	// Meanwhile c2's cluster changes.
	w2 := baseWorld("a")
	w2[xds.ClusterType]["c2"] = "b"
	h.publish("v2", w2, PushRequest{Full: true})

	c = h.delta()
	re := dreq(xds.ClusterType, "")
	re.Node = node(id)
	re.InitialResourceVersions = map[string]string{
		"c1":   versionOf(cds, "c1"),
		"c2":   versionOf(cds, "c2"),
		"gone": "123",
	}
	c.send(re)
	// c1 is unchanged and not resent; c2 changed; "gone" no longer exists.
	expectDelta(t, c.recv(), xds.ClusterType, []string{"c2"}, []string{"gone"})

	reEDS := dreq(xds.EndpointType, "")
	reEDS.ResourceNamesSubscribe = []string{"c1", "c2"}
	reEDS.InitialResourceVersions = map[string]string{"c1": versionOf(eds, "c1"), "c2": "stale"}
	c.send(reEDS)
	expectDelta(t, c.recv(), xds.EndpointType, []string{"c2"}, nil)
}

func TestDeltaNACKNotResent(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	c := h.delta()
	first := dreq(xds.ListenerType, "")
	first.Node = node(sidecarID("10.0.0.1", "p1", "ns1"))
	c.send(first)
	lds := c.recv()
	c.send(dreq(xds.ListenerType, lds.GetNonce()))
	sub := dreq(xds.RouteType, "")
	sub.ResourceNamesSubscribe = []string{"r1"}
	c.send(sub)
	rds := c.recv()
	expectDelta(t, rds, xds.RouteType, []string{"r1"}, nil)

	w2 := baseWorld("a")
	w2[xds.ListenerType]["l1"] = "bad"
	h.update("v2", w2, PushRequest{Full: true})
	lds2 := c.recv()
	expectDelta(t, lds2, xds.ListenerType, []string{"l1"}, nil)
	nack := dreq(xds.ListenerType, lds2.GetNonce())
	nack.ErrorDetail = &status.Status{Code: 3, Message: "listener l1: bad filter"}
	c.send(nack)

	// v3 keeps the rejected listener and changes the route: only RDS.
	w3 := baseWorld("a")
	w3[xds.ListenerType]["l1"] = "bad"
	w3[xds.RouteType]["r1"] = "b"
	h.update("v3", w3, PushRequest{Full: true})
	expectDelta(t, c.recv(), xds.RouteType, []string{"r1"}, nil)
	if n := metric(t, h.reg, "pilot_total_xds_rejects", map[string]string{"type": "lds"}); n != 1 {
		t.Errorf("rejects = %v, want 1", n)
	}
	cs := h.srv.Clients()
	if len(cs) != 1 || cs[0].Types[0].LastNACK != "listener l1: bad filter" {
		t.Fatalf("status %+v", cs)
	}
}

func TestDeltaStaleNonceKeepsSubscription(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	c := h.delta()
	first := dreq(xds.EndpointType, "")
	first.Node = node(sidecarID("10.0.0.1", "p1", "ns1"))
	first.ResourceNamesSubscribe = []string{"c1"}
	c.send(first)
	eds := c.recv()
	expectDelta(t, eds, xds.EndpointType, []string{"c1"}, nil)
	h.update("v2", baseWorld("b"), PushRequest{Full: false})
	eds2 := c.recv()
	expectDelta(t, eds2, xds.EndpointType, []string{"c1"}, nil)

	// Stale nonce: the ACK part is ignored, the subscription applies.
	stale := dreq(xds.EndpointType, eds.GetNonce())
	stale.ResourceNamesSubscribe = []string{"c2"}
	c.send(stale)
	expectDelta(t, c.recv(), xds.EndpointType, []string{"c2"}, nil)
	if n := metric(t, h.reg, "pilot_xds_expired_nonce", map[string]string{"type": "eds"}); n != 1 {
		t.Errorf("expired nonce = %v, want 1", n)
	}
	cs := h.srv.Clients()
	if len(cs) != 1 || cs[0].Types[0].Acked {
		t.Fatalf("stale nonce must not ACK: %+v", cs)
	}
}

// FuzzDeltaState drives the delta subscription state with arbitrary
// subscribe/unsubscribe/generate sequences and checks its invariants.
func FuzzDeltaState(f *testing.F) {
	f.Add([]byte{0x3c, 0x0e, 0x21, 0x09, 0x12, 0xff})
	f.Add([]byte{0x00, 0x02, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const limit = 6
		universe := []string{"a", "b", "c", "d", "e", "f"}
		h := &delta{c: &connection{s: &Server{maxNames: limit}}}
		ts := &typeState{}
		pick := func(mask byte) []string {
			var out []string
			for k, n := range universe {
				if mask&(1<<k) != 0 {
					out = append(out, n)
				}
			}
			return out
		}
		var last []xds.Resource
		for step, op := range ops {
			arg := op >> 2
			switch op & 3 {
			case 0:
				if _, err := h.subscribe(1, ts, pick(arg), nil); err != nil {
					t.Fatal(err) // at most 6 distinct names: never over the limit
				}
			case 1:
				if _, err := h.subscribe(1, ts, nil, pick(arg)); err != nil {
					t.Fatal(err)
				}
			case 2, 3:
				if op&3 == 2 || last == nil {
					last = nil
					for _, n := range pick(arg) {
						last = append(last, xds.Resource{Name: n, Version: fmt.Sprint(step)})
					}
				}
				subscribed := map[string]bool{}
				for _, e := range ts.entries {
					subscribed[e.name] = true
				}
				out, removed := diffNamed(ts, last)
				inRes := map[string]bool{}
				for _, r := range last {
					inRes[r.Name] = true
				}
				for _, r := range out {
					if !subscribed[r.GetName()] || !inRes[r.GetName()] {
						t.Fatalf("sent %q: subscribed %v, generated %v", r.GetName(), subscribed[r.GetName()], inRes[r.GetName()])
					}
				}
				for _, n := range removed {
					if !subscribed[n] || inRes[n] {
						t.Fatalf("removed %q: subscribed %v, generated %v", n, subscribed[n], inRes[n])
					}
				}
				if out, removed := diffNamed(ts, last); len(out)+len(removed) != 0 {
					t.Fatalf("unchanged generation resent %d, removed %v", len(out), removed)
				}
			}
			for k := 1; k < len(ts.entries); k++ {
				if ts.entries[k-1].name >= ts.entries[k].name {
					t.Fatalf("entries not strictly sorted: %v", ts.entries)
				}
			}
			if len(ts.entries) > limit {
				t.Fatalf("%d entries over the limit", len(ts.entries))
			}
		}
	})
}
