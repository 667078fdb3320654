//go:build linux

package security

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/test/framework"
)

// Ports of the workload, one per backend.
const (
	nginxPort  = 8081
	apachePort = 8082
	goPort     = 8083
	// inboundPort is the sidecar's inbound capture listener.
	inboundPort = 15006
	// adminPort is the sidecar's admin endpoint (metrics, pprof).
	adminPort = 15000
)

// world is what every mode shares: the workload address, the marker and
// the three backends listening there.
type world struct {
	ip       netip.Addr // the workload's address (a loopback address of its own)
	marker   string
	backends []*backend
	seq      int // the last request id (x-case), unique across modes
}

// newWorld picks a loopback /24 of the test process's own, so parallel
// test binaries do not collide, and starts the backends on it.
func newWorld(t *testing.T) *world {
	t.Helper()
	pid := os.Getpid()
	base := [4]byte{127, byte(100 + pid%100), byte(1 + (pid/100)%250), 0}
	at := func(last byte) netip.Addr { b := base; b[3] = last; return netip.AddrFrom4(b) }
	w := &world{ip: at(1)}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	w.marker = "SECRET-MARKER-" + hex.EncodeToString(rnd[:])
	ip := w.ip.String()
	w.backends = []*backend{
		startNginx(t, ip, nginxPort, w.marker),
		startApache(t, ip, apachePort, w.marker),
		startEcho(t, ip, goPort, w.marker),
	}
	for i, b := range w.backends {
		b.src = at(byte(11 + i)).String()
	}
	return w
}

// originalDst stands in for SO_ORIGINAL_DST: without iptables, the
// client's source address says which workload port it meant.
func (w *world) originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	src, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, b := range w.backends {
		if b.src == src.Addr().String() {
			return netip.AddrPortFrom(w.ip, b.port), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no original destination for %s", src)
}

// mesh is a control plane with one mesh configuration and the workload's
// real sidecar, in process, whose inbound listener the tests dial.
type mesh struct {
	*world
	cp      *framework.ControlPlane
	inbound string // the sidecar's inbound listener address
	admin   string // the sidecar's admin address (/stats/prometheus)
	// pendingCheck are refused requests to look for again in the access
	// logs once the mode's cases are done (a log line may trail the
	// response).
	pendingCheck []pending
}

type pending struct {
	b        *backend
	id, what string
}

// checkLogs fails for every refused request a backend logged.
func (m *mesh) checkLogs(t *testing.T) {
	t.Helper()
	for _, p := range m.pendingCheck {
		if seen := saw(p.b, p.id); len(seen) > 0 {
			t.Errorf("%s: %s saw the request: %q", p.what, p.b.name, seen)
		}
	}
	m.pendingCheck = nil
}

// startMesh runs the control plane with mc (nil: the defaults), writes
// the services and policy, and starts the sidecar; it returns once the
// sidecar enforces the policy (probe answers 403 on every backend).
func startMesh(t *testing.T, w *world, mc *meshconfig.MeshConfig, policy string) *mesh {
	t.Helper()
	return startMeshWith(t, w, meshOptions{cp: framework.ControlPlaneOptions{Mesh: mc}}, policy)
}

// meshOptions vary the control plane and the sidecar of startMeshWith.
type meshOptions struct {
	cp framework.ControlPlaneOptions
	// identity, when set, gives the sidecar its mesh identity from the
	// control plane's CA (cp.SecureAddress must be set): its inbound
	// listener then terminates mesh mTLS on the PeerAuthentication's chains.
	identity func(*framework.ControlPlane) identity.Config
	// maxConns is the sidecar's per-socket connection limit
	// (sidecar.Config.MaxConnections; 0: the default).
	maxConns int
}

// startMeshWith is startMesh with options.
func startMeshWith(t *testing.T, w *world, o meshOptions, policy string) *mesh {
	t.Helper()
	cp := framework.StartControlPlaneWith(t, o.cp)
	cp.WriteFile(t, "services.yaml", servicesYAML(w.ip))
	cp.WriteFile(t, "policy.yaml", policy)
	node, err := sidecar.NodeConfig{IP: w.ip.String(), PodName: "secure-1", Namespace: "default",
		Labels: map[string]string{"app": "secure"}, ServiceAccount: "secure"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("TRELLIS_E2E_LOGS") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg := sidecar.Config{
		XDSAddress: cp.XDSAddr().String(), Node: node,
		AdminAddress: netip.AddrPortFrom(w.ip, adminPort).String(), HealthAddress: "-", MetricsAddress: "-",
		BindAddress: w.ip.String(), DrainDuration: 10 * time.Millisecond,
		OriginalDst:    w.originalDst,
		Logger:         logger,
		MaxConnections: o.maxConns,
	}
	if o.identity != nil {
		cfg.Identity = o.identity(cp)
	}
	sc, err := sidecar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		sc.Stop()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})
	m := &mesh{world: w, cp: cp, inbound: netip.AddrPortFrom(w.ip, inboundPort).String(),
		admin: netip.AddrPortFrom(w.ip, adminPort).String()}
	framework.Eventually(t, 30*time.Second, func() error {
		if !sc.Ready() {
			return fmt.Errorf("sidecar not ready")
		}
		return nil
	})
	m.waitPolicy(t, "/admin", 403)
	m.waitPolicy(t, "/public", 200)
	return m
}

// waitPolicy polls GET path on every backend until it answers code: the
// configuration in force is the one just written.
func (m *mesh) waitPolicy(t *testing.T, path string, code int) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, func() error {
		for _, b := range m.backends {
			r := m.tryH1(b, request{method: "GET", authority: "secure", path: path})
			if r.status != code {
				return fmt.Errorf("%s GET %s: %v, want %d", b.name, path, r, code)
			}
		}
		return nil
	})
	// Every filter chain serves the same configuration: a few answers in
	// a row (listener updates swap per connection).
	for range 5 {
		for _, b := range m.backends {
			if r := m.tryH1(b, request{method: "GET", authority: "secure", path: path}); r.status != code {
				framework.Eventually(t, 30*time.Second, func() error {
					if r := m.tryH1(b, request{method: "GET", authority: "secure", path: path}); r.status != code {
						return fmt.Errorf("%s GET %s: %v, want %d", b.name, path, r, code)
					}
					return nil
				})
			}
		}
	}
}

// tryH1 is h1 without failing the test on a dial error (the listener may
// not be bound yet).
func (m *mesh) tryH1(b *backend, r request) result {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(b.src)}, Timeout: time.Second}
	c, err := d.Dial("tcp", m.inbound)
	if err != nil {
		return result{how: err.Error()}
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return h1On(c, r.h1Raw())
}

func servicesYAML(ip netip.Addr) string {
	var ports strings.Builder
	for _, p := range []struct {
		name string
		n    int
	}{{"http-nginx", nginxPort}, {"http-apache", apachePort}, {"http-go", goPort}} {
		fmt.Fprintf(&ports, "  - number: %d\n    name: %s\n    protocol: HTTP\n", p.n, p.name)
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: secure
  namespace: default
spec:
  hosts:
  - secure.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
%s  resolution: STATIC
  workloadSelector:
    labels:
      app: secure
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: secure-1
  namespace: default
spec:
  address: %s
  serviceAccount: secure
  labels:
    app: secure
`, ports.String(), ip)
}
