package listener_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/freeport"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t *testing.T) uint32 {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return uint32(p)
}

// TestGeneratedSidecarIngress runs the listener the control plane
// generates for a Sidecar ingress with captureMode NONE (what `trellis up`
// gives each workload): it is bound at bind:port, has no original_dst,
// and picks its filter chain by the local address of the accepted
// connection, even when the capture hook would report some other
// destination.
func TestGeneratedSidecarIngress(t *testing.T) {
	port := freePort(t)
	yaml := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop}
spec:
  hosts: [shop.default.svc.cluster.local]
  ports: [{number: %[1]d, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: shop}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: shop-1}
spec: {address: 127.0.0.1, labels: {app: shop}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: shop-1}
spec:
  workloadSelector: {labels: {app: shop}}
  ingress:
  - port: {number: %[1]d, name: http, protocol: HTTP}
    bind: 127.0.0.1
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:1
`, port)
	ls := generated(t, gentest.YAML(t, yaml), "shop-1")
	name := fmt.Sprintf("127.0.0.1_%d", port)
	l := ls[name]
	if l == nil {
		t.Fatalf("no listener %s", name)
	}
	// The capture hook answers for every connection: a listener without
	// original_dst must not use it.
	cfg := listener.Config{OriginalDst: func(*net.TCPConn) (netip.AddrPort, error) {
		return netip.MustParseAddrPort("10.9.9.9:15006"), nil
	}}
	e := start(t, cfg, &tcp.Direct{}, l)
	addr := e.addr(t, name)
	if addr != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("bound at %s", addr)
	}
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := fmt.Fprintf(c, "GET /p HTTP/1.1\r\nHost: shop\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		reasons, _ := e.metrics.get()
		t.Fatalf("reading: %v (listener filters closed: %v)", err, reasons)
	}
	if want := fmt.Sprintf("hcm:inbound|%d|| GET /p HTTP/1.1", port); strings.TrimSpace(got) != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	compiled := mustCompileGenerated(t, l)
	if compiled.UseOriginalDst() || !compiled.BindToPort() {
		t.Errorf("use_original_dst=%v bind=%v", compiled.UseOriginalDst(), compiled.BindToPort())
	}
}

func mustCompileGenerated(t *testing.T, l *listenerv3.Listener) *listener.Listener {
	t.Helper()
	c, err := listener.Compile(l, listener.Registry{hcmTypeURL: hcmStub{}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
