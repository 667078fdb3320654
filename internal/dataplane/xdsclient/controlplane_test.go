package xdsclient_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
	"github.com/trellismesh/trellis/test/framework"
)

// reviewsEntry is a ServiceEntry for reviews with HTTP ports.
func reviewsEntry(ports ...int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
  ports:
`)
	for _, p := range ports {
		fmt.Fprintf(&b, "  - number: %d\n    name: http-%d\n    protocol: HTTP\n", p, p)
	}
	return b.String()
}

const reviewsWorkload = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
  namespace: default
spec:
  address: 10.0.0.5
  labels:
    app: reviews
    version: v1
`

// reviewsRoute is a VirtualService for reviews whose first route matches
// the path prefix.
func reviewsRoute(prefix string) string {
	return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  http:
  - match:
    - uri:
        prefix: ` + prefix + `
    route:
    - destination:
        host: reviews.default.svc.cluster.local
  - route:
    - destination:
        host: reviews.default.svc.cluster.local
`
}

const (
	cluster9080 = "outbound|9080||reviews.default.svc.cluster.local"
	cluster9081 = "outbound|9081||reviews.default.svc.cluster.local"
)

// startMesh runs the control plane on a directory with reviews (one port,
// one workload) and its VirtualService.
func startMesh(t *testing.T) *framework.ControlPlane {
	t.Helper()
	dir := t.TempDir()
	framework.WriteFileAtomic(t, filepath.Join(dir, "reviews.yaml"), reviewsEntry(9080))
	framework.WriteFileAtomic(t, filepath.Join(dir, "workload.yaml"), reviewsWorkload)
	framework.WriteFileAtomic(t, filepath.Join(dir, "vs.yaml"), reviewsRoute("/v1"))
	return framework.StartControlPlane(t, dir)
}

func newClient(t *testing.T, server string, p xdsclient.Protocol, consumer xdsclient.Consumer) *xdsclient.Client {
	t.Helper()
	c, err := xdsclient.New(xdsclient.Config{
		Server:   server,
		Node:     sidecarNode("127.0.0.10"),
		Consumer: consumer,
		Protocol: p,
		Backoff:  xdsclient.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:   testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hasAll reports an error unless every name is in the recorder's state of
// the type.
func hasAll(rec *recorder, typeURL string, names ...string) error {
	have := rec.names(typeURL)
	for _, n := range names {
		if !slices.Contains(have, n) {
			return fmt.Errorf("%s has %v, want %s", typeURL, have, n)
		}
	}
	return nil
}

func hasNone(rec *recorder, typeURL string, names ...string) error {
	have := rec.names(typeURL)
	for _, n := range names {
		if slices.Contains(have, n) {
			return fmt.Errorf("%s still has %s", typeURL, n)
		}
	}
	return nil
}

// synced waits for the first full configuration of a sidecar outside the
// mesh's workloads.
func synced(t *testing.T, rec *recorder) {
	t.Helper()
	eventually(t, "first sync", func() error {
		return errors.Join(
			hasAll(rec, xdsclient.ClusterType, cluster9080, "PassthroughCluster", "BlackHoleCluster"),
			hasAll(rec, xdsclient.EndpointType, cluster9080),
			hasAll(rec, xdsclient.ListenerType, "virtualOutbound", "virtualInbound", "0.0.0.0_9080"),
			hasAll(rec, xdsclient.RouteType, "9080"),
		)
	})
}

// firstCall returns the index of the first Apply of typeURL whose set
// includes name, or -1.
func firstCall(h []applyCall, typeURL, name string) int {
	for i, c := range h {
		if c.typeURL == typeURL && slices.Contains(c.names, name) {
			return i
		}
	}
	return -1
}

// inOrder checks that the first deliveries of the given (type, name) pairs
// happened in that order.
func inOrder(t *testing.T, h []applyCall, pairs ...[2]string) {
	t.Helper()
	prev := -1
	for _, p := range pairs {
		i := firstCall(h, p[0], p[1])
		if i < 0 {
			t.Fatalf("%s %s never delivered; history %v", p[0], p[1], h)
		}
		if i <= prev {
			t.Fatalf("%s %s delivered at call %d, before the previous step (call %d); history %v", p[0], p[1], i, prev, h)
		}
		prev = i
	}
}

func protocols() []xdsclient.Protocol { return []xdsclient.Protocol{xdsclient.Delta, xdsclient.SotW} }

// TestControlPlaneSync syncs with the real control plane over delta and
// sotw: the first sync is delivered CDS, EDS, LDS, RDS; a new port arrives
// in the same order; removing it drops its cluster, endpoints, listener and
// route; the control plane sees every type ACKed.
func TestControlPlaneSync(t *testing.T) {
	for _, p := range protocols() {
		t.Run(p.String(), func(t *testing.T) {
			cp := startMesh(t)
			rec := newRecorder()
			c := newClient(t, cp.XDSAddr().String(), p, rec)
			run(t, c)
			synced(t, rec)

			h := rec.history()
			inOrder(t, h,
				[2]string{xdsclient.ClusterType, cluster9080},
				[2]string{xdsclient.EndpointType, cluster9080},
				[2]string{xdsclient.ListenerType, "0.0.0.0_9080"},
				[2]string{xdsclient.RouteType, "9080"})
			// The first sync delivers exactly one set per type.
			if len(h) != 4 {
				t.Errorf("first sync took %d Apply calls, want 4: %v", len(h), h)
			}
			m, _ := rec.get(xdsclient.EndpointType, cluster9080)
			if got := endpointAddrs(m.(*endpointv3.ClusterLoadAssignment)); !slices.Equal(got, []string{"10.0.0.5"}) {
				t.Errorf("endpoints of %s: %v, want [10.0.0.5]", cluster9080, got)
			}
			eventually(t, "all types ACKed on the control plane", func() error { return allAcked(cp, p) })
			st := c.Status()
			if !st.Connected || st.Protocol != p {
				t.Errorf("status %+v: want connected over %s", st, p)
			}
			for _, ts := range st.Types {
				if ts.Version == "" || ts.LastUpdate.IsZero() || ts.LastNACK != "" || ts.Resources == 0 {
					t.Errorf("status of %s: %+v", ts.TypeURL, ts)
				}
			}

			// A new port: its cluster, endpoints, listener and route arrive,
			// the endpoints before the listener.
			before := len(rec.history())
			cp.WriteFile(t, "reviews.yaml", reviewsEntry(9080, 9081))
			eventually(t, "port 9081 configured", func() error {
				return errors.Join(
					hasAll(rec, xdsclient.ClusterType, cluster9081),
					hasAll(rec, xdsclient.EndpointType, cluster9081),
					hasAll(rec, xdsclient.ListenerType, "0.0.0.0_9081"),
					hasAll(rec, xdsclient.RouteType, "9081"),
				)
			})
			inOrder(t, rec.history()[before:],
				[2]string{xdsclient.ClusterType, cluster9081},
				[2]string{xdsclient.EndpointType, cluster9081},
				[2]string{xdsclient.ListenerType, "0.0.0.0_9081"},
				[2]string{xdsclient.RouteType, "9081"})

			// Removing it unsubscribes and drops its endpoints and route.
			cp.WriteFile(t, "reviews.yaml", reviewsEntry(9080))
			eventually(t, "port 9081 gone", func() error {
				return errors.Join(
					hasNone(rec, xdsclient.ClusterType, cluster9081),
					hasNone(rec, xdsclient.EndpointType, cluster9081),
					hasNone(rec, xdsclient.ListenerType, "0.0.0.0_9081"),
					hasNone(rec, xdsclient.RouteType, "9081"),
					hasAll(rec, xdsclient.EndpointType, cluster9080),
					hasAll(rec, xdsclient.RouteType, "9080"),
				)
			})
			if _, ok := resources(t, c, xdsclient.EndpointType)[cluster9081]; ok {
				t.Errorf("client still holds the endpoints of the removed %s", cluster9081)
			}
			eventually(t, "all types ACKed after the changes", func() error { return allAcked(cp, p) })
		})
	}
}

func endpointAddrs(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			out = append(out, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
		}
	}
	return out
}

// allAcked checks that the control plane has one client, over protocol p,
// with the four types requested and the last response of each ACKed (after
// a delta reconnection the server may have had nothing to send for a type).
func allAcked(cp *framework.ControlPlane, p xdsclient.Protocol) error {
	clients := cp.Clients()
	if len(clients) != 1 {
		return fmt.Errorf("%d clients connected, want 1", len(clients))
	}
	cl := clients[0]
	if cl.Delta != (p == xdsclient.Delta) {
		return fmt.Errorf("client delta=%v, want %s", cl.Delta, p)
	}
	if len(cl.Types) != 4 {
		return fmt.Errorf("client asked for %d types, want 4: %+v", len(cl.Types), cl.Types)
	}
	for _, ts := range cl.Types {
		if ts.SentNonce != "" && !ts.Acked {
			return fmt.Errorf("%s not ACKed: %+v", ts.TypeURL, ts)
		}
	}
	return nil
}

// routePrefixes lists the prefix matches of a route configuration.
func routePrefixes(m proto.Message) []string {
	var out []string
	for _, vh := range m.(*routev3.RouteConfiguration).GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if p := r.GetMatch().GetPrefix(); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestControlPlaneNACK has the consumer reject a route: the control plane
// records the NACK, the client keeps the old route, and a later valid
// change is applied.
func TestControlPlaneNACK(t *testing.T) {
	for _, p := range protocols() {
		t.Run(p.String(), func(t *testing.T) {
			cp := startMesh(t)
			rec := newRecorder()
			rec.setReject(func(typeURL, name string, m proto.Message) error {
				if typeURL == xdsclient.RouteType && slices.Contains(routePrefixes(m), "/reject") {
					return errors.New("prefix /reject is not allowed")
				}
				return nil
			})
			c := newClient(t, cp.XDSAddr().String(), p, rec)
			run(t, c)
			synced(t, rec)
			acked := c.Status().Types[3].Version

			cp.WriteFile(t, "vs.yaml", reviewsRoute("/reject"))
			const want = "RDS 9080: prefix /reject is not allowed"
			eventually(t, "NACK recorded by the control plane", func() error {
				for _, cl := range cp.Clients() {
					for _, ts := range cl.Types {
						if ts.TypeURL == xdsclient.RouteType && ts.LastNACK == want && !ts.Acked {
							return nil
						}
					}
				}
				return fmt.Errorf("no RDS NACK %q in %+v", want, cp.Clients())
			})
			st := c.Status().Types[3]
			if st.LastNACK != want || st.Version != acked {
				t.Errorf("RDS status %+v: want NACK %q with version %s kept", st, want, acked)
			}
			if got := routePrefixes(resources(t, c, xdsclient.RouteType)["9080"]); !slices.Contains(got, "/v1") {
				t.Errorf("client's route 9080 has prefixes %v after the NACK, want the old /v1", got)
			}
			if m, _ := rec.get(xdsclient.RouteType, "9080"); !slices.Contains(routePrefixes(m), "/v1") {
				t.Errorf("consumer's route 9080 has prefixes %v after the NACK, want the old /v1", routePrefixes(m))
			}

			cp.WriteFile(t, "vs.yaml", reviewsRoute("/v2"))
			eventually(t, "valid change applied", func() error {
				m, _ := rec.get(xdsclient.RouteType, "9080")
				if got := routePrefixes(m); !slices.Contains(got, "/v2") {
					return fmt.Errorf("route 9080 prefixes %v, want /v2", got)
				}
				if got := routePrefixes(resources(t, c, xdsclient.RouteType)["9080"]); !slices.Contains(got, "/v2") {
					return fmt.Errorf("client's route 9080 prefixes %v, want /v2", got)
				}
				return allAcked(cp, p)
			})
			if st := c.Status().Types[3]; st.Version == acked || st.LastUpdate.Before(st.LastNACKTime) {
				t.Errorf("RDS status after the valid change %+v: want a new version updated after the NACK", st)
			}
		})
	}
}

// TestControlPlaneReconnect stops the control plane: the consumer keeps
// its configuration; a new control plane on the same address gets the
// client back, which resyncs and receives later changes.
func TestControlPlaneReconnect(t *testing.T) {
	for _, p := range protocols() {
		t.Run(p.String(), func(t *testing.T) {
			cp := startMesh(t)
			addr := cp.XDSAddr().String()
			rec := newRecorder()
			c := newClient(t, addr, p, rec)
			run(t, c)
			synced(t, rec)

			cp.Stop()
			eventually(t, "disconnected", func() error {
				if st := c.Status(); st.Connected || st.Reconnects == 0 {
					return fmt.Errorf("status %+v", st)
				}
				return nil
			})
			synced(t, rec) // still the whole configuration

			cp2 := framework.StartControlPlaneAt(t, cp.Dir, addr)
			eventually(t, "reconnected and ACKed", func() error {
				if st := c.Status(); !st.Connected {
					return fmt.Errorf("status %+v", st)
				}
				return allAcked(cp2, p)
			})
			for _, call := range rec.history() {
				if len(call.names) == 0 {
					t.Errorf("consumer was given an empty %s set", call.typeURL)
				}
			}
			cp2.WriteFile(t, "reviews.yaml", reviewsEntry(9080, 9081))
			eventually(t, "change after reconnection", func() error {
				return errors.Join(
					hasAll(rec, xdsclient.EndpointType, cluster9081),
					hasAll(rec, xdsclient.RouteType, "9081"),
				)
			})
		})
	}
}
