//go:build linux

package manager_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
)

// fullBacklog returns the port of a loopback listener that never accepts
// and whose accept queue is full: Linux drops further SYNs, so connecting
// to it hangs until the connect timeout.
func fullBacklog(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if i == 16 {
			t.Skip("could not fill the listen backlog")
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return port // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
}

// TestConnectTimeout: connectTimeout bounds connecting to a host that
// does not answer, for HTTP (UF, connection timeout) and TCP (retried by
// the tcp proxy), and counts as a local-origin failure of the host.
func TestConnectTimeout(t *testing.T) {
	port := fullBacklog(t)
	yaml := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: web, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {web: %d}}
%s`, svcHost, port, rule(`    connectionPool:
      tcp: {connectTimeout: 150ms}`))
	m := startManager(t, manager.Config{})
	apply(t, m, generate(t, yaml))

	start := time.Now()
	r := get(context.Background(), m, svcCluster, router.PickContext{})
	if !errors.Is(r.err, router.ErrConnectTimeout) {
		t.Fatalf("HTTP: %v, want a connect timeout", r.err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("HTTP connect timeout after %v", d)
	}

	start = time.Now()
	_, err := m.Dial(context.Background(), svcCluster, nil)
	var e *manager.Error
	if !errors.As(err, &e) || e.Flag() != "UF" || errors.Is(err, tcp.ErrNoHealthyUpstream) || errors.Is(err, tcp.ErrOverflow) {
		t.Fatalf("TCP: %v, want a retriable connect failure", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("TCP connect timeout after %v", d)
	}
	h := clusterStatus(t, m, svcCluster).Hosts[0]
	if h.CxActive != 0 || poolStats(t, m, svcCluster).ConnectFailures != 1 {
		t.Errorf("host %+v", h.HostStatus)
	}
}
