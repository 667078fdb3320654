//go:build linux

package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/test/framework"
)

// reconnectWait bounds the sidecars' return to a restarted control plane:
// their xDS client retries with jittered exponential back-off (ceilings
// 0.5s, 1s, 2s, … up to 30s, internal/dataplane/xdsclient/backoff.go),
// and the outage below lasts a few seconds, so the next attempt comes well
// within this.
const reconnectWait = 30 * time.Second

// vsAllTo routes everything to subset, marked with marker.
func vsAllTo(subset, marker string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: %s
    headers:
      request:
        set:
          %s: %s
`, subset, markerHeader, marker)
}

// xdsStatus is the part of a sidecar's /xds_status (xdsclient.Status) the
// test reads.
type xdsStatus struct {
	Connected      bool
	ConnectedSince time.Time
	LastError      string
	Reconnects     int
}

func (w *workload) xdsStatus() (xdsStatus, error) {
	var st xdsStatus
	out, err := w.admin("/xds_status")
	if err != nil {
		return st, fmt.Errorf("%s sidecar /xds_status: %w", w.name, err)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("%s sidecar /xds_status %q: %w", w.name, trim(out), err)
	}
	return st, nil
}

// testControlPlaneOutage stops the control plane: the sidecars keep the
// configuration they have and go on serving with it (HTTP routing, TCP,
// readiness); then a control plane starts again on the same address and
// directory, the sidecars reconnect by themselves, and a new
// VirtualService takes effect through them. It must be the last subtest:
// the suite's control plane is gone after it (the restarted one lives
// until the subtest ends).
func testControlPlaneOutage(t *testing.T, m *mesh) {
	all := []*workload{m.client, m.reviews["v1"], m.reviews["v2"], m.reviews["v3"], m.echo}
	m.applyVS(t, vsAllTo("v1", "before-outage"))
	m.until(t, propagation, 20, "/", nil, marked("reviews-v1", "before-outage"))
	for _, w := range all {
		st, err := w.xdsStatus()
		if err != nil || !st.Connected {
			t.Fatalf("%s sidecar not connected to the control plane before the outage: %+v, %v", w.name, st, err)
		}
	}

	m.cp.Stop()
	stopped := time.Now()
	framework.Eventually(t, propagation, func() error {
		for _, w := range all {
			st, err := w.xdsStatus()
			if err != nil {
				return err
			}
			if st.Connected {
				return fmt.Errorf("%s sidecar still connected to the stopped control plane: %+v", w.name, st)
			}
		}
		return nil
	})
	t.Logf("control plane stopped; every sidecar saw its xDS stream end within %v", time.Since(stopped).Round(time.Millisecond))

	// Serving on the configuration received before.
	const n = 300
	r := m.load(n, 4, "/")
	t.Logf("control plane down: %v", r)
	if r.Names["reviews-v1"] != n {
		t.Errorf("with the control plane down, want all %d answered by v1 as before: %v", n, r)
	}
	if got := r.Last.Headers.Get(markerHeader); got != "before-outage" {
		t.Errorf("with the control plane down, v1 saw %s %q, want %q", markerHeader, got, "before-outage")
	}
	dst := netip.AddrPortFrom(m.echo.ns.Addr, echoPort).String()
	for i := range 10 {
		g, err := tcpEcho(context.Background(), m.dialer(), dst, fmt.Sprintf("outage %d", i))
		if err != nil || !strings.Contains(g, "peer="+passthroughSrc+":") {
			t.Errorf("with the control plane down, TCP connection %d: greeting %q, err %v", i, g, err)
			break
		}
	}
	for _, w := range all {
		if out, err := w.admin("/ready"); err != nil || out != "LIVE\n" {
			t.Errorf("%s sidecar /ready with the control plane down: %q, %v (want LIVE: it keeps its configuration)", w.name, out, err)
		}
	}
	if dump, err := m.client.admin("/config_dump"); err != nil || !strings.Contains(dump, "before-outage") {
		t.Errorf("client sidecar /config_dump with the control plane down lacks the route in force (err %v)", err)
	}
	outage := time.Since(stopped)

	// A control plane again, where the sidecars look for it. Every
	// stream that began after restarted is with the new one.
	restarted := time.Now()
	m.cp = framework.StartControlPlaneWith(t, m.cpOpts)
	if got := m.cp.XDSAddr().String(); got != m.xdsAddr {
		t.Fatalf("restarted control plane serves xDS on %s, want %s", got, m.xdsAddr)
	}
	framework.Eventually(t, reconnectWait, func() error {
		for _, w := range all {
			st, err := w.xdsStatus()
			if err != nil {
				return err
			}
			if !st.Connected || st.ConnectedSince.Before(restarted) {
				return fmt.Errorf("%s sidecar not reconnected to the restarted control plane: %+v", w.name, st)
			}
		}
		return nil
	})
	t.Logf("control plane down for %v; restarted on %s, every sidecar reconnected within %v", outage.Round(time.Millisecond), m.xdsAddr, time.Since(restarted).Round(time.Millisecond))

	m.applyVS(t, vsAllTo("v3", "after-outage"))
	m.until(t, propagation, 20, "/", nil, marked("reviews-v3", "after-outage"))
	r = m.load(200, 4, "/")
	t.Logf("after the restart, all to v3: %v", r)
	if r.Names["reviews-v3"] != 200 {
		t.Errorf("after the restart, want all 200 answered by v3: %v", r)
	}
}
