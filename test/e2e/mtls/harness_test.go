//go:build linux

package mtls

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/test/framework"
)

const (
	appPort     = 9080
	proxyGID    = 1337
	healthPort  = 15021
	metricsPort = 15020
	serverName  = "istiod.istio-system.svc" // a SAN of the CA's serving certificate
	propagation = 15 * time.Second
)

// workload is one namespace, with its sidecar when meshed.
type workload struct {
	name, sa  string // sa: the identity its sidecar runs as
	declared  string // the service account its WorkloadEntry declares
	ns        *framework.Netns
	proxy     *framework.Process
	app       *app
	tcpApp    *app // meshOptions.tcpPort's app, when set
	tokenFile string
}

// mesh is the topology of the package doc.
type mesh struct {
	t                                  testing.TB
	opts                               meshOptions
	cp                                 *framework.ControlPlane
	secure                             string // the control plane's CA and xDS address
	client, server, payments, outsider *workload
	// mode is the PeerAuthentication mode last written.
	mode string
}

// meshOptions varies the topology between the package's tests.
type meshOptions struct {
	// bridge prefixes the bridge's name (the process ID is appended);
	// subnet is the third octet of its 10.89.<subnet>.0/24. Each top-level
	// test has its own, so that one's cleanup never races another's setup.
	bridge string
	subnet byte
	// sidecarArgs are added to every sidecar's command line.
	sidecarArgs []string
	// tcpPort, when set, is a second port of the server's app, declared
	// with protocol TCP: the sidecars proxy it connection by connection,
	// so every client connection is one mTLS handshake between them.
	tcpPort int
	// mesh is the control plane's mesh configuration (nil: defaults).
	mesh *meshconfig.MeshConfig
}

// aliasTrustDomain is meshConfig.trustDomainAliases of newMesh's mesh.
const aliasTrustDomain = "old.example"

// newMesh is TestMTLS's mesh: default mesh configuration but for a trust
// domain alias.
func newMesh(t *testing.T) *mesh {
	t.Helper()
	mc := model.DefaultMesh()
	mc.TrustDomainAliases = []string{aliasTrustDomain}
	return newMeshWith(t, meshOptions{bridge: "trm", mesh: mc})
}

func newMeshWith(t testing.TB, o meshOptions) *mesh {
	t.Helper()
	framework.RequireNetns(t)
	if buildErr != nil {
		t.Fatalf("building trellis: %v", buildErr)
	}
	m := &mesh{t: t, opts: o}
	bridge := framework.NewBridge(t, fmt.Sprintf("%s%d", o.bridge, os.Getpid()%10000), netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, o.subnet, 0}), 24))
	addr := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 89, o.subnet, last}) }
	m.client = &workload{name: "client", sa: "client", declared: "client"}
	m.server = &workload{name: "server", sa: "server", declared: "server"}
	m.payments = &workload{name: "payments", sa: "intruder", declared: "payments"}
	m.outsider = &workload{name: "outsider"}
	for i, w := range []*workload{m.client, m.server, m.payments, m.outsider} {
		w.ns = bridge.AddNetns(t, w.name, addr(byte(10+i)))
	}
	m.server.app = startApp(t, m.server, appPort)
	m.payments.app = startApp(t, m.payments, appPort)
	if o.tcpPort != 0 {
		m.server.tcpApp = startApp(t, m.server, o.tcpPort)
	}

	// Control plane: CA and xDS over mutual TLS only.
	m.cp = framework.StartControlPlaneWith(t, framework.ControlPlaneOptions{XDSAddress: "-", SecureAddress: bridge.Addr.String() + ":0", Mesh: o.mesh})
	m.secure = m.cp.SecureGRPCAddr().String()
	m.cp.WriteFile(t, "services.yaml", servicesYAML(m))

	meshed := []*workload{m.client, m.server, m.payments}
	for _, w := range meshed {
		var err error
		if _, w.tokenFile, err = bootstrap.Mint(filepath.Join(m.cp.CADir, "bootstrap"), "default", w.sa); err != nil {
			t.Fatal(err)
		}
		out := w.ns.Run(t, trellisBin, "proxy", "iptables")
		if rules := w.ns.Run(t, "iptables-save", "-t", "nat"); !strings.Contains(rules, "ISTIO_REDIRECT") {
			t.Fatalf("%s: capture rules not installed:\n%s\n%s", w.name, out, rules)
		}
		m.startSidecar(t, w)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, w := range meshed {
			wg.Go(w.proxy.Stop)
		}
		wg.Wait()
	})
	for _, w := range meshed {
		waitReady(t, w)
	}
	return m
}

// startSidecar runs the workload's sidecar with its identity: certificate
// from the CA with its bootstrap token, xDS over mTLS with it.
func (m *mesh) startSidecar(t testing.TB, w *workload) {
	t.Helper()
	args := []string{"proxy", "sidecar",
		"--xds-address", m.secure,
		"--ca-address", m.secure,
		"--ca-server-name", serverName,
		"--ca-root-cert", filepath.Join(m.cp.CADir, ca.RootFile),
		"--bootstrap-token", w.tokenFile,
		"--service-account", w.sa,
		"--ip", w.ns.Addr.String(),
		"--pod-name", w.name,
		"--namespace", "default",
		"--labels", "app=" + w.name,
		"--drain-duration", "100ms",
	}
	cmd := w.ns.Command(context.Background(), trellisBin, append(args, m.opts.sidecarArgs...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: proxyGID, Groups: []uint32{}}}
	w.proxy = framework.StartProcess(t, "sidecar "+w.name, cmd, os.Getenv("TRELLIS_E2E_LOGS") != "")
}

func waitReady(t testing.TB, w *workload) {
	t.Helper()
	url := fmt.Sprintf("http://%s/healthz/ready", netip.AddrPortFrom(w.ns.Addr, healthPort))
	c := &http.Client{Timeout: 2 * time.Second}
	framework.Eventually(t, 30*time.Second, func() error {
		if err, exited := w.proxy.Exited(); exited {
			t.Fatalf("sidecar %s exited: %v\n%s", w.name, err, w.proxy.Tail(50))
		}
		resp, err := c.Get(url)
		if err != nil {
			return fmt.Errorf("%s: %v", w.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", w.name, resp.Status, body)
		}
		return nil
	})
}

func servicesYAML(m *mesh) string {
	var b strings.Builder
	for _, w := range []*workload{m.server, m.payments} {
		tcp := ""
		if w == m.server && m.opts.tcpPort != 0 {
			tcp = fmt.Sprintf("  - number: %d\n    name: tcp\n    protocol: TCP\n", m.opts.tcpPort)
		}
		fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %[1]s
  namespace: default
spec:
  hosts:
  - %[1]s.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: %[2]d
    name: http
    protocol: HTTP
%[3]s  resolution: STATIC
  workloadSelector:
    labels:
      app: %[1]s
---
`, w.name, appPort, tcp)
	}
	for _, w := range []*workload{m.client, m.server, m.payments} {
		fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %s
  namespace: default
spec:
  address: %s
  serviceAccount: %s
  labels:
    app: %s
---
`, w.name, w.ns.Addr, w.declared, w.name)
	}
	return b.String()
}

// setPeerAuthentication makes mode the namespace's mTLS mode.
func (m *mesh) setPeerAuthentication(t testing.TB, mode string) {
	t.Helper()
	m.mode = mode
	m.cp.WriteFile(t, "peer-authentication.yaml", fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: %s
`, mode))
}

// app is an HTTP server that counts the bytes it accepts and answers
// "<workload> <peer ip>".
type app struct {
	bytes atomic.Int64
	// xfcc is the x-forwarded-client-cert of the last request.
	xfcc atomic.Value
}

func startApp(t testing.TB, w *workload, port int) *app {
	t.Helper()
	a := &app{}
	l := w.ns.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", port))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			a.xfcc.Store(strings.Join(r.Header.Values("X-Forwarded-Client-Cert"), ","))
			fmt.Fprintf(rw, "%s %s", w.name, host)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(countingListener{l, &a.bytes})
	t.Cleanup(func() { srv.Close() })
	return a
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// get sends one HTTP/1.1 request from the namespace to the server
// workload's address with the given Host, over conn made by dial; it
// returns the status line's code and the body.
func get(conn net.Conn, host string) (int, string, error) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// plainGet dials addr from w's namespace and sends a plaintext request.
func plainGet(w *workload, to *workload, host string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := w.ns.DialContext(ctx, "tcp", netip.AddrPortFrom(to.ns.Addr, appPort).String())
	if err != nil {
		return 0, "", err
	}
	return get(c, host)
}

func host(w *workload) string { return w.name + ".default.svc.cluster.local" }

// metrics scrapes a sidecar's merged metrics port (not captured).
func metrics(w *workload) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/stats/prometheus", netip.AddrPortFrom(w.ns.Addr, metricsPort)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// hasSample reports whether body has a sample of name carrying every
// label="value" of labels.
func hasSample(body, name string, labels ...string) bool {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
