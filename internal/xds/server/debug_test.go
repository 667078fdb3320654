package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/xds"
)

// get fetches a debug path from the handler and returns status and body.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func syncz(t *testing.T, h http.Handler) []SyncStatus {
	t.Helper()
	code, body := get(t, h, "/debug/syncz")
	if code != http.StatusOK {
		t.Fatalf("syncz: %d %s", code, body)
	}
	var out []SyncStatus
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("syncz: %v\n%s", err, body)
	}
	return out
}

// typeStates maps short type names to status (and last NACK).
func typeStates(s SyncStatus) map[string]string {
	out := map[string]string{}
	for _, x := range s.XDS {
		out[x.Type] = x.Status
		if x.LastNACK != "" {
			out[x.Type] += ": " + x.LastNACK
		}
	}
	return out
}

// TestDebugSyncz drives a sotw proxy to SYNCED (CDS), NACKED (LDS) and
// STALE (RDS) and a delta proxy to SYNCED, and reads /debug/syncz.
func TestDebugSyncz(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	dbg := h.srv.DebugHandler(DebugConfig{Instance: "cp-0"})

	sotwID := sidecarID("10.0.0.1", "reviews-v1", "bookinfo")
	sc := h.sotw()
	md, _ := structpb.NewStruct(map[string]any{"ISTIO_VERSION": "1.31.0", "CLUSTER_ID": "Kubernetes", "NAMESPACE": "bookinfo"})
	sc.send(&discovery.DiscoveryRequest{TypeUrl: xds.ClusterType, Node: &core.Node{Id: sotwID, Metadata: md}})
	cds := sc.recv()
	sc.send(ack(cds))
	sc.send(&discovery.DiscoveryRequest{TypeUrl: xds.ListenerType})
	lds := sc.recv()
	nack := ack(lds)
	nack.ErrorDetail = &status.Status{Code: 3, Message: "listener l1: unsupported filter"}
	sc.send(nack)
	sc.send(&discovery.DiscoveryRequest{TypeUrl: xds.RouteType, ResourceNames: []string{"r1"}})
	rds := sc.recv() // left unanswered: STALE

	deltaID := sidecarID("10.0.0.2", "ratings-v1", "bookinfo")
	dc := h.delta()
	first := dreq(xds.ClusterType, "")
	first.Node = &core.Node{Id: deltaID, UserAgentName: "trellis", UserAgentVersionType: &core.Node_UserAgentVersion{UserAgentVersion: "0.1.0"}}
	dc.send(first)
	dcds := dc.recv()
	dc.send(dreq(xds.ClusterType, dcds.GetNonce()))

	var got []SyncStatus
	// The stream goroutine records a response as sent once Send returns,
	// which may be after the client has read it: wait for RDS too.
	eventually(t, "syncz shows the NACK, the unanswered RDS and the delta ACK", func() bool {
		got = syncz(t, dbg)
		return len(got) == 2 && typeStates(got[1])["CDS"] == StateSynced &&
			strings.HasPrefix(typeStates(got[0])["LDS"], StateNACKed) && typeStates(got[0])["RDS"] == StateStale
	})
	s, d := got[0], got[1] // sorted by proxy ID
	if s.Proxy != sotwID || s.Name != "reviews-v1.bookinfo" || s.Namespace != "bookinfo" || s.ClusterID != "Kubernetes" ||
		s.ProxyVersion != "1.31.0" || s.ControlPlane != "cp-0" || s.Delta || s.ProxyType != "sidecar" {
		t.Errorf("sotw proxy: %+v", s)
	}
	want := map[string]string{"CDS": StateSynced, "LDS": StateNACKed + ": listener l1: unsupported filter", "RDS": StateStale}
	if fmt.Sprint(typeStates(s)) != fmt.Sprint(want) {
		t.Errorf("sotw states %v, want %v", typeStates(s), want)
	}
	for _, x := range s.XDS {
		switch x.Type {
		case "CDS":
			if x.SentVersion != cds.GetVersionInfo() || x.AckedVersion != cds.GetVersionInfo() ||
				x.SentNonce != cds.GetNonce() || x.AckedNonce != cds.GetNonce() {
				t.Errorf("CDS versions/nonces %+v, want version %s nonce %s", x, cds.GetVersionInfo(), cds.GetNonce())
			}
		case "LDS":
			if x.SentNonce != lds.GetNonce() || x.AckedNonce != "" {
				t.Errorf("LDS nonces %+v, want sent %s, none acked", x, lds.GetNonce())
			}
		case "RDS":
			if x.SentNonce != rds.GetNonce() || x.AckedVersion != "" {
				t.Errorf("RDS %+v, want sent nonce %s, nothing acked", x, rds.GetNonce())
			}
		}
	}
	if d.ProxyVersion != "trellis 0.1.0" || !d.Delta || typeStates(d)["CDS"] != StateSynced ||
		!strings.HasPrefix(d.ConnectionID, deltaID+"-") {
		t.Errorf("delta proxy: %+v", d)
	}

	// Answering RDS, and a later ACK of LDS content, clears STALE and
	// NACKED; the NACK's message stays as the last one.
	sc.send(ack(rds, "r1"))
	w := baseWorld("a")
	w[xds.ListenerType]["l1"] = "fixed"
	h.update("v2", w, PushRequest{Full: true})
	lds2 := sc.recv()
	if lds2.GetTypeUrl() != xds.ListenerType {
		t.Fatalf("want LDS push, got %s", lds2.GetTypeUrl())
	}
	sc.send(ack(lds2))
	eventually(t, "sotw proxy fully synced", func() bool {
		for _, st := range syncz(t, dbg) {
			if st.Proxy == sotwID {
				ts := typeStates(st)
				return ts["CDS"] == StateSynced && ts["RDS"] == StateSynced &&
					ts["LDS"] == StateSynced+": listener l1: unsupported filter"
			}
		}
		return false
	})
}

// dumpOf fetches and parses the config dump of a proxy.
func dumpOf(t *testing.T, h http.Handler, id string) *adminv3.ConfigDump {
	t.Helper()
	code, body := get(t, h, "/debug/config_dump?proxyID="+url.QueryEscape(id))
	if code != http.StatusOK {
		t.Fatalf("config_dump %s: %d %s", id, code, body)
	}
	var d adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("config_dump %s: %v\n%s", id, err, body)
	}
	return &d
}

func TestDebugConfigDump(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	dbg := h.srv.DebugHandler(DebugConfig{})

	id := sidecarID("10.0.0.1", "p1", "ns1")
	c := h.sotw()
	c.send(&discovery.DiscoveryRequest{TypeUrl: xds.ClusterType, Node: node(id)})
	cds := c.recv()
	c.send(ack(cds))
	c.send(&discovery.DiscoveryRequest{TypeUrl: xds.EndpointType, ResourceNames: []string{"c2"}})
	eds := c.recv()
	c.send(ack(eds, "c2"))
	c.send(&discovery.DiscoveryRequest{TypeUrl: xds.ListenerType})
	lds := c.recv()
	nack := ack(lds)
	nack.ErrorDetail = &status.Status{Message: "bad listener"}
	c.send(nack)
	eventually(t, "LDS NACK recorded", func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && len(cs[0].Types) == 3 && cs[0].Types[2].NACKed && cs[0].Types[1].Acked
	})

	for _, name := range []string{id, "p1.ns1", h.srv.Clients()[0].ConnectionID} {
		d := dumpOf(t, dbg, name)
		if len(d.GetConfigs()) != 3 {
			t.Fatalf("%s: %d sections, want CDS, EDS, LDS", name, len(d.GetConfigs()))
		}
		var cd adminv3.ClustersConfigDump
		var ed adminv3.EndpointsConfigDump
		var ld adminv3.ListenersConfigDump
		for i, m := range []proto.Message{&cd, &ed, &ld} {
			if err := d.GetConfigs()[i].UnmarshalTo(m); err != nil {
				t.Fatalf("%s: section %d: %v", name, i, err)
			}
		}
		var clusters []string
		for _, dc := range cd.GetDynamicActiveClusters() {
			var cl cluster.Cluster
			if err := dc.GetCluster().UnmarshalTo(&cl); err != nil {
				t.Fatal(err)
			}
			clusters = append(clusters, cl.GetName())
			if dc.GetVersionInfo() != cds.GetVersionInfo() || dc.GetClientStatus() != adminv3.ClientResourceStatus_ACKED {
				t.Errorf("cluster %s: version %q status %v, want %q ACKED", cl.GetName(), dc.GetVersionInfo(), dc.GetClientStatus(), cds.GetVersionInfo())
			}
		}
		if strings.Join(clusters, ",") != "c1,c2" || cd.GetVersionInfo() != cds.GetVersionInfo() {
			t.Errorf("clusters %v version %q", clusters, cd.GetVersionInfo())
		}
		// Only the subscribed endpoints.
		if n := len(ed.GetDynamicEndpointConfigs()); n != 1 {
			t.Fatalf("endpoints: %d, want c2 only", n)
		}
		var cla endpoint.ClusterLoadAssignment
		if err := ed.GetDynamicEndpointConfigs()[0].GetEndpointConfig().UnmarshalTo(&cla); err != nil || cla.GetClusterName() != "c2" {
			t.Errorf("endpoints: %v %v", cla.GetClusterName(), err)
		}
		dl := ld.GetDynamicListeners()
		if len(dl) != 1 || dl[0].GetName() != "l1" || dl[0].GetClientStatus() != adminv3.ClientResourceStatus_NACKED ||
			dl[0].GetErrorState().GetDetails() != "bad listener" {
			t.Fatalf("listeners: %v", dl)
		}
		var l listener.Listener
		if err := dl[0].GetActiveState().GetListener().UnmarshalTo(&l); err != nil || l.GetStatPrefix() != "a" {
			t.Errorf("listener content %v %v", l.GetStatPrefix(), err)
		}
	}

	for _, tc := range []struct {
		name, query string
		code        int
		msg         string
	}{
		{"unknown proxy", "?proxyID=nobody.ns1", http.StatusNotFound, `proxy "nobody.ns1" is not connected to this control plane`},
		{"missing id", "", http.StatusBadRequest, "proxyID query parameter is required"},
	} {
		code, body := get(t, dbg, "/debug/config_dump"+tc.query)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, code, body, tc.code, tc.msg)
		}
	}
	if code, _ := get(t, dbg, "/debug/nothing"); code != http.StatusNotFound {
		t.Errorf("unknown debug path: %d", code)
	}
}

// TestDebugConfigDumpAmbiguous: two proxies with one pod.namespace name
// (different IPs) need the full ID.
func TestDebugConfigDumpAmbiguous(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	dbg := h.srv.DebugHandler(DebugConfig{})
	for _, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		c := h.sotw()
		c.send(&discovery.DiscoveryRequest{TypeUrl: xds.ClusterType, Node: node(sidecarID(ip, "p1", "ns1"))})
		c.recv()
	}
	code, body := get(t, dbg, "/debug/config_dump?proxyID=p1.ns1")
	if code != http.StatusBadRequest || !strings.Contains(body, "ambiguous") {
		t.Errorf("ambiguous name: %d %s", code, body)
	}
	d := dumpOf(t, dbg, sidecarID("10.0.0.2", "p1", "ns1"))
	if len(d.GetConfigs()) != 1 {
		t.Errorf("full ID: %d sections", len(d.GetConfigs()))
	}
}

// TestDebugDuringPushes reads syncz and config dumps while pushes and
// reconnections happen (run with -race).
func TestDebugDuringPushes(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v0", baseWorld("0"), PushRequest{Full: true})
	dbg := h.srv.DebugHandler(DebugConfig{})
	srv := httptest.NewServer(dbg)
	defer srv.Close()

	const proxies, rounds = 4, 20
	var wg sync.WaitGroup
	var clients []*deltaClient
	for p := range proxies {
		id := sidecarID(fmt.Sprintf("10.0.1.%d", p+1), fmt.Sprintf("p%d", p), "ns1")
		c := h.delta()
		clients = append(clients, c)
		first := dreq(xds.ClusterType, "")
		first.Node = node(id)
		c.send(first)
		sub := dreq(xds.EndpointType, "")
		sub.ResourceNamesSubscribe = []string{"c1"}
		c.send(sub)
		wg.Go(func() {
			for r := range c.resps {
				if c.stream.Send(dreq(r.GetTypeUrl(), r.GetNonce())) != nil {
					return
				}
			}
		})
	}
	readers := make(chan error, 2)
	stop := make(chan struct{})
	for range 2 {
		go func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					readers <- nil
					return
				default:
				}
				for _, path := range []string{"/debug/syncz", fmt.Sprintf("/debug/config_dump?proxyID=p%d.ns1", k%proxies)} {
					resp, err := http.Get(srv.URL + path)
					if err != nil {
						readers <- err
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						readers <- fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
						return
					}
				}
			}
		}()
	}
	for v := 1; v <= rounds; v++ {
		h.publish(fmt.Sprint("v", v), baseWorld(fmt.Sprint(v)), PushRequest{Full: true})
	}
	close(stop)
	for range 2 {
		if err := <-readers; err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every proxy synced on the last snapshot", func() bool {
		st := syncz(t, dbg)
		if len(st) != proxies {
			return false
		}
		for _, s := range st {
			ts := typeStates(s)
			if ts["CDS"] != StateSynced || ts["EDS"] != StateSynced {
				return false
			}
			for _, x := range s.XDS {
				if x.SentVersion != fmt.Sprint("v", rounds) {
					return false
				}
			}
		}
		return true
	})
	// The dump reflects the last snapshot.
	d := dumpOf(t, dbg, "p0.ns1")
	var cd adminv3.ClustersConfigDump
	if err := d.GetConfigs()[0].UnmarshalTo(&cd); err != nil {
		t.Fatal(err)
	}
	var cl cluster.Cluster
	if err := cd.GetDynamicActiveClusters()[0].GetCluster().UnmarshalTo(&cl); err != nil || cl.GetAltStatName() != fmt.Sprint(rounds) {
		t.Errorf("dumped cluster content %q (%v), want %d", cl.GetAltStatName(), err, rounds)
	}
	for _, c := range clients {
		c.close()
	}
	wg.Wait()
}
