package sidecar_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/test/framework"
)

// tcpAuthz is a real envoy.service.auth.v3 Authorization service: it
// allows connections whose source address is allow and denies the rest.
type tcpAuthz struct {
	authv3.UnimplementedAuthorizationServer
	allow  string
	checks atomic.Int64
}

func (s *tcpAuthz) Check(_ context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.checks.Add(1)
	c := code.Code_PERMISSION_DENIED
	if r.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress() == s.allow {
		c = code.Code_OK
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(c)}}, nil
}

// tcpBackend is the workload: it echoes lines and records what it got.
type tcpBackend struct {
	mu       sync.Mutex
	accepted int
	received []string
}

func (b *tcpBackend) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.accepted++
		b.mu.Unlock()
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if line != "" {
					b.mu.Lock()
					b.received = append(b.received, line)
					b.mu.Unlock()
				}
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, "echo:"+line); err != nil {
					return
				}
			}
		}()
	}
}

func (b *tcpBackend) seen() (int, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted, strings.Join(b.received, "")
}

// tcpAuthzMesh is a control plane, the workload's real sidecar (in
// process, inbound capture listener dialled directly, OriginalDst
// standing in for SO_ORIGINAL_DST) and its TCP backend.
type tcpAuthzMesh struct {
	ip, allowIP, denyIP string
	backend             *tcpBackend
}

const tcpAuthzYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcpapp, namespace: default}
spec:
  hosts: [tcpapp.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: tcpapp}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcpapp-1, namespace: default}
spec: {address: %s, labels: {app: tcpapp}, serviceAccount: tcpapp}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: default}
spec:
  hosts: [ext-authz.default.svc.cluster.local]
  ports: [{number: 9000, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: %s}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-custom, namespace: default}
spec:
  selector: {matchLabels: {app: tcpapp}}
  action: CUSTOM
  provider: {name: tcp-authz}
  rules: [{to: [{operation: {ports: ["7000"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-run-deny
  namespace: default
  annotations: {istio.io/dry-run: "true"}
spec:
  selector: {matchLabels: {app: tcpapp}}
  action: DENY
  rules: [{from: [{source: {ipBlocks: ["%s"]}}]}]
`

// startTCPAuthzMesh runs the mesh with the gRPC provider at authzAddr.
func startTCPAuthzMesh(t *testing.T, authzAddr string, failOpen bool) *tcpAuthzMesh {
	t.Helper()
	ip := loopbackIP()
	base := netip.MustParseAddr(ip).As4()
	m := &tcpAuthzMesh{ip: ip, backend: &tcpBackend{},
		allowIP: fmt.Sprintf("127.%d.%d.253", base[1], base[2]), denyIP: fmt.Sprintf("127.%d.%d.254", base[1], base[2])}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "7000"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go m.backend.serve(ln)

	mc := &meshconfig.MeshConfig{ExtensionProviders: []*meshconfig.MeshConfig_ExtensionProvider{{
		Name: "tcp-authz",
		Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
			Service: "ext-authz.default.svc.cluster.local", Port: 9000, FailOpen: failOpen, Timeout: durationpb.New(2 * time.Second),
		}},
	}}}
	cp := framework.StartControlPlaneWith(t, framework.ControlPlaneOptions{Mesh: mc})
	cp.WriteFile(t, "mesh.yaml", fmt.Sprintf(tcpAuthzYAML, ip, portOf(t, authzAddr), m.allowIP))
	node, err := sidecar.NodeConfig{IP: ip, PodName: "tcpapp-1", Namespace: "default",
		Labels: map[string]string{"app": "tcpapp"}, ServiceAccount: "tcpapp"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort(net.JoinHostPort(ip, "7000"))
	sc, err := sidecar.New(sidecar.Config{
		XDSAddress: cp.XDSAddr().String(), Node: node,
		AdminAddress: net.JoinHostPort(ip, "15000"), HealthAddress: "-", MetricsAddress: "-",
		BindAddress: ip, DrainDuration: 10 * time.Millisecond,
		OriginalDst: func(*net.TCPConn) (netip.AddrPort, error) { return target, nil },
		Logger:      slog.New(slog.DiscardHandler),
	})
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
	framework.Eventually(t, 30*time.Second, func() error {
		if !sc.Ready() {
			return fmt.Errorf("sidecar not ready")
		}
		return nil
	})
	// The policies are in force once the inbound listener has the
	// network ext_authz filter.
	framework.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + net.JoinHostPort(ip, "15000") + "/config_dump")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "envoy.filters.network.ext_authz") {
			return fmt.Errorf("no network ext_authz filter in the config yet")
		}
		return nil
	})
	return m
}

// exchange dials the inbound listener from src, sends line and returns
// what comes back before the connection ends (or 2s pass).
func (m *tcpAuthzMesh) exchange(src, line string) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
	c, err := d.Dial("tcp", net.JoinHostPort(m.ip, "15006"))
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

// stats returns the sidecar's /stats/prometheus.
func (m *tcpAuthzMesh) stats(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + net.JoinHostPort(m.ip, "15000") + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// counter reads one series of the exposition ("" labels: none).
func counter(body, series string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err == nil
		}
	}
	return 0, false
}

// TestTCPCustomAuthz: an AuthorizationPolicy with action CUSTOM on a TCP
// port, through the control plane's generated network shadow RBAC and
// ext_authz filters and the sidecar's real inbound listener, against a
// real gRPC Authorization service; the RBAC and ext_authz counters on
// the admin /stats/prometheus.
func TestTCPCustomAuthz(t *testing.T) {
	authz := &tcpAuthz{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, authz)
	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(ln) })
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			gs.Stop()
		}
		wg.Wait()
	})
	m := startTCPAuthzMesh(t, ln.Addr().String(), false)
	authz.allow = m.allowIP

	// Allowed: bytes relayed both ways (polled: the listener and its
	// filters arrive with the first push).
	framework.Eventually(t, 30*time.Second, func() error {
		got, err := m.exchange(m.allowIP, "hello")
		if got != "echo:hello\n" {
			return fmt.Errorf("allowed client got %q, %v", got, err)
		}
		return nil
	})
	if authz.checks.Load() == 0 {
		t.Fatal("the ext_authz service was never asked")
	}

	// Denied: closed before the backend sees a connection or a byte.
	acceptedBefore, _ := m.backend.seen()
	got, err := m.exchange(m.denyIP, "secret-denied")
	if got != "" || err == nil {
		t.Errorf("denied client got %q, %v; want the connection closed", got, err)
	}
	accepted, received := m.backend.seen()
	if accepted != acceptedBefore || strings.Contains(received, "secret-denied") {
		t.Errorf("backend saw the denied connection: %d accepts (before %d), data %q", accepted, acceptedBefore, received)
	}

	body := m.stats(t)
	for series, min := range map[string]float64{
		`envoy_ext_authz_tcp_ok`:        1,
		`envoy_ext_authz_tcp_denied`:    1,
		`envoy_ext_authz_tcp_cx_closed`: 1,
		// Every connection is selected by the CUSTOM rule (port 7000):
		// the shadow DENY engine matches, "denied".
		`envoy_tcp_rbac_istio_ext_authz_{authz_dry_run_result="denied"}`: 2,
		// The dry-run DENY on allowIP (after ext_authz in the chain, so
		// only allowed connections reach it) would have denied it.
		`envoy_tcp_rbac{authz_dry_run_action="deny",authz_dry_run_result="denied"}`: 1,
	} {
		if v, ok := counter(body, series); !ok || v < min {
			t.Errorf("%s = %v (found %v), want at least %v", series, v, ok, min)
		}
	}
	if t.Failed() {
		t.Logf("stats:\n%s", body)
	}

	// Server down, failure_mode_allow false: closed, nothing relayed.
	gs.Stop()
	stopped = true
	got, err = m.exchange(m.allowIP, "secret-down")
	if got != "" || err == nil {
		t.Errorf("server down: client got %q, %v; want the connection closed", got, err)
	}
	if _, received := m.backend.seen(); strings.Contains(received, "secret-down") {
		t.Errorf("server down: the backend got %q", received)
	}
	if v, _ := counter(m.stats(t), "envoy_ext_authz_tcp_error"); v < 1 {
		t.Errorf("envoy_ext_authz_tcp_error = %v, want at least 1", v)
	}
}

// TestTCPCustomAuthzFailOpen: the provider's failOpen lets connections
// through while the service is down.
func TestTCPCustomAuthzFailOpen(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	m := startTCPAuthzMesh(t, deadAddr, true)
	framework.Eventually(t, 30*time.Second, func() error {
		got, err := m.exchange(m.denyIP, "hello")
		if got != "echo:hello\n" {
			return fmt.Errorf("fail-open client got %q, %v", got, err)
		}
		return nil
	})
	body := m.stats(t)
	for _, series := range []string{
		"envoy_ext_authz_tcp_failure_mode_allowed",
		"envoy_ext_authz_tcp_error",
		// The dry-run DENY names allowIP only: denyIP would pass it.
		`envoy_tcp_rbac{authz_dry_run_action="deny",authz_dry_run_result="allowed"}`,
	} {
		if v, _ := counter(body, series); v < 1 {
			t.Errorf("%s = %v, want at least 1\n%s", series, v, body)
		}
	}
}
