package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trellismesh/trellis/test/framework"
)

// These tests run the built trellis-proxy as a process in local mode (no
// traffic capture: a Sidecar ingress listener on the workload's loopback
// address and the explicit proxy), configured by an in-process control
// plane, and drive its lifecycle the way a kubelet and an operator do:
// SIGTERM, a second SIGTERM, POST /quitquitquit.

// lifecycleYAML: the workload's service, client, whose Sidecar gives the
// proxy an ingress listener on the workload's address forwarding to the
// application (what trellis up generates), and reviews, reached outbound
// through the explicit proxy.
const lifecycleYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: client, namespace: default}
spec:
  hosts: [client.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 18080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-1, namespace: default}
spec: {address: %[1]s, labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client-1, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  ingress:
  - port: {number: 18080, name: http, protocol: HTTP}
    bind: %[1]s
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:%[2]s
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec: {address: 127.0.0.1, labels: {app: reviews}, ports: {http: %[3]s}}
`

var ipSeq atomic.Uint32

// loopbackIP is an address of 127/8 for one proxy: the proxy binds its
// fixed ports (15000, 15001, 15006, 15021, ...) there, so tests and other
// test processes do not collide.
func loopbackIP() string {
	pid := os.Getpid()
	return fmt.Sprintf("127.%d.%d.%d", 150+pid%100, (pid/100)%250+1, ipSeq.Add(1)%250+2)
}

// slowApp is the application: /slow answers once release is closed, every
// other path at once, with "app <path>".
type slowApp struct {
	addr    string
	started chan struct{} // receives when a /slow request arrived
	release chan struct{}
}

func startApp(t *testing.T) *slowApp {
	t.Helper()
	a := &slowApp{started: make(chan struct{}, 1), release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			a.started <- struct{}{}
			select {
			case <-a.release:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "app %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proxyProc is a running trellis-proxy sidecar.
type proxyProc struct {
	p       *framework.Process
	app     *slowApp
	admin   string // http://ip:15000
	ready   string // http://ip:15021/healthz/ready
	ingress string // ip:18080, the inbound listener
	proxy   string // ip:15080, the explicit proxy
}

// startProxy builds trellis-proxy, starts the control plane and the proxy
// with --drain-duration drain and the environment variables env
// ("KEY=value"), and waits until it is ready and serves inbound and
// outbound; the connections its checks opened are closed.
func startProxy(t *testing.T, drain time.Duration, env ...string) *proxyProc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "trellis-proxy")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	ip := loopbackIP()
	app := startApp(t)
	reviews := startApp(t)
	cp := framework.StartControlPlane(t, "")
	cp.WriteFile(t, "mesh.yaml", fmt.Sprintf(lifecycleYAML, ip, port(t, app.addr), port(t, reviews.addr)))
	at := func(p string) string { return net.JoinHostPort(ip, p) }
	cmd := exec.Command(bin, "sidecar",
		"--xds-address", cp.XDSAddr().String(),
		"--ip", ip, "--pod-name", "client-1", "--namespace", "default", "--labels", "app=client",
		"--bind-address", ip,
		"--admin-address", at("15000"),
		"--health-address", at("15021"),
		"--metrics-address", "-",
		"--explicit-proxy", at("15080"),
		"--drain-duration", drain.String())
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...) // no CA_ADDR, XDS_ADDRESS, ... from the test's environment
	px := &proxyProc{
		p:       framework.StartProcess(t, "trellis-proxy", cmd, false),
		app:     app,
		admin:   "http://" + at("15000"),
		ready:   "http://" + at("15021") + "/healthz/ready",
		ingress: at("18080"),
		proxy:   at("15080"),
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	oc := px.outboundClient(t)
	defer hc.CloseIdleConnections()
	defer oc.CloseIdleConnections()
	framework.Eventually(t, 30*time.Second, func() error {
		if err, done := px.p.Exited(); done {
			t.Fatalf("trellis-proxy exited before ready: %v\n%s", err, px.p.Tail(40))
		}
		if code, body, err := get(hc, px.ready); err != nil || code != 200 {
			return fmt.Errorf("readiness: %d %q %v", code, body, err)
		}
		if code, body, err := get(hc, "http://"+px.ingress+"/"); err != nil || code != 200 || body != "app /" {
			return fmt.Errorf("inbound: %d %q %v", code, body, err)
		}
		if code, body, err := get(oc, "http://reviews.default.svc.cluster.local:9080/"); err != nil || code != 200 || body != "app /" {
			return fmt.Errorf("outbound: %d %q %v", code, body, err)
		}
		return nil
	})
	return px
}

// outboundClient sends its requests through the explicit proxy.
func (px *proxyProc) outboundClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: px.proxy})}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func (px *proxyProc) signal(t *testing.T) {
	t.Helper()
	if err := px.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// waitExit polls for the process's exit for up to d and returns its exit
// error and when it was seen to have exited, since start.
func (px *proxyProc) waitExit(t *testing.T, start time.Time, d time.Duration) (error, time.Duration) {
	t.Helper()
	deadline := start.Add(d)
	for {
		if err, done := px.p.Exited(); done {
			return err, time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("trellis-proxy still running %v after the signal\n%s", d, px.p.Tail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDraining polls readiness, on the health port and the admin /ready,
// until both answer 503 DRAINING, for up to d.
func (px *proxyProc) waitDraining(t *testing.T, d time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	framework.Eventually(t, d, func() error {
		for _, u := range []string{px.ready, px.admin + "/ready"} {
			code, body, err := get(hc, u)
			if err != nil || code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "DRAINING") {
				return fmt.Errorf("%s: %d %q %v", u, code, body, err)
			}
		}
		return nil
	})
}

func get(c *http.Client, u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// conn is a client connection on which HTTP/1.1 requests are sent one
// after the other.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{c: c, r: bufio.NewReader(c)}
}

func (c *conn) send(path string) error {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: client\r\n\r\n", path)
	return err
}

// read reads a response: status, whether it closes the connection, body.
func (c *conn) read() (int, bool, string, error) {
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, false, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Close, string(b), err
}

func (c *conn) do(path string) (int, bool, string, error) {
	if err := c.send(path); err != nil {
		return 0, false, "", err
	}
	return c.read()
}

// closed reports whether the peer closed the connection within d.
func (c *conn) closed(d time.Duration) bool {
	c.c.SetReadDeadline(time.Now().Add(d))
	_, err := c.r.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestSIGTERM sends SIGTERM to the process while a request is in flight
// on the inbound listener and another connection sits idle, and checks
// Istio's terminationDrainDuration sequence as docs/local-mode.md
// describes it: readiness answers 503 DRAINING at once; the inbound
// listener keeps accepting and serving, its responses carrying
// "Connection: close"; the outbound side (explicit proxy) keeps serving;
// the in-flight request completes; the process exits with status 0 once
// --drain-duration has passed, not before, and not later than a margin,
// although a client connection is still open.
func TestSIGTERM(t *testing.T) {
	const (
		drain  = 3 * time.Second
		margin = 5 * time.Second
	)
	px := startProxy(t, drain)
	idle := dial(t, px.ingress)
	if code, closes, body, err := idle.do("/idle"); err != nil || code != 200 || closes || body != "app /idle" {
		t.Fatalf("idle connection's first request: %d close=%v %q %v", code, closes, body, err)
	}
	inflight := dial(t, px.ingress)
	if code, closes, _, err := inflight.do("/warm"); err != nil || code != 200 || closes {
		t.Fatalf("in-flight connection's first request: %d close=%v %v", code, closes, err)
	}
	if err := inflight.send("/slow"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-px.app.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow request did not reach the application")
	}

	start := time.Now()
	px.signal(t)
	// "at once": well within the drain duration.
	px.waitDraining(t, time.Second)
	t.Logf("readiness DRAINING %v after SIGTERM", time.Since(start))

	// Inbound: a new connection is still accepted and served, and asked
	// to close.
	if code, closes, body, err := dial(t, px.ingress).do("/new"); err != nil || code != 200 || !closes || body != "app /new" {
		t.Errorf("inbound during the drain, new connection: %d close=%v %q %v; want 200, Connection: close", code, closes, body, err)
	}
	// Outbound: the application's own calls still work.
	if code, body, err := get(px.outboundClient(t), "http://reviews.default.svc.cluster.local:9080/during"); err != nil || code != 200 || body != "app /during" {
		t.Errorf("outbound during the drain: %d %q %v", code, body, err)
	}

	// The request in flight when the signal came completes.
	close(px.app.release)
	code, closes, body, err := inflight.read()
	if err != nil || code != 200 || body != "app /slow" {
		t.Errorf("in-flight request: %d %q %v; want 200 \"app /slow\"", code, body, err)
	}
	if !closes {
		t.Error("in-flight request's response during the drain: no Connection: close")
	}
	if !inflight.closed(2 * time.Second) {
		t.Error("in-flight connection not closed after its Connection: close response")
	}
	if err, done := px.p.Exited(); done {
		t.Fatalf("trellis-proxy exited %v after SIGTERM (%v), before the drain duration %v", time.Since(start), err, drain)
	}

	err, exitAt := px.waitExit(t, start, drain+margin)
	t.Logf("trellis-proxy exited %v after SIGTERM (drain duration %v): %v", exitAt, drain, err)
	if err != nil {
		t.Errorf("exit: %v, want status 0\n%s", err, px.p.Tail(20))
	}
	if exitAt < drain {
		t.Errorf("exited %v after SIGTERM, before the drain duration %v", exitAt, drain)
	}
	if !idle.closed(time.Second) {
		t.Error("idle connection still open after the exit")
	}
	if c, err := net.DialTimeout("tcp", px.ingress, time.Second); err == nil {
		c.Close()
		t.Error("inbound listener accepts after the exit")
	}
}

// TestSecondSIGTERM: a second SIGTERM during the drain period ends the
// process at once, with status 0 (the drain duration is a minute).
func TestSecondSIGTERM(t *testing.T) {
	px := startProxy(t, time.Minute)
	px.signal(t)
	px.waitDraining(t, 2*time.Second)
	start := time.Now()
	px.signal(t)
	err, exitAt := px.waitExit(t, start, 5*time.Second)
	t.Logf("trellis-proxy exited %v after the second SIGTERM: %v", exitAt, err)
	if err != nil {
		t.Errorf("exit: %v, want status 0\n%s", err, px.p.Tail(20))
	}
}

// TestQuitQuitQuit: POST /quitquitquit on the admin port ends the process
// at once, with status 0, without a drain period (a minute here); a GET
// is refused and changes nothing.
func TestQuitQuitQuit(t *testing.T) {
	px := startProxy(t, time.Minute)
	hc := &http.Client{Timeout: 2 * time.Second}
	if code, _, err := get(hc, px.admin+"/quitquitquit"); err != nil || code != http.StatusMethodNotAllowed {
		t.Errorf("GET /quitquitquit: %d %v, want 405", code, err)
	}
	if code, body, err := get(hc, px.ready); err != nil || code != 200 {
		t.Fatalf("readiness after GET /quitquitquit: %d %q %v", code, body, err)
	}
	start := time.Now()
	resp, err := hc.Post(px.admin+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatalf("POST /quitquitquit: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(b) != "OK\n" {
		t.Errorf("POST /quitquitquit: %d %q %v, want 200 OK", resp.StatusCode, b, err)
	}
	err, exitAt := px.waitExit(t, start, 5*time.Second)
	t.Logf("trellis-proxy exited %v after POST /quitquitquit: %v", exitAt, err)
	if err != nil {
		t.Errorf("exit: %v, want status 0\n%s", err, px.p.Tail(20))
	}
}

// TestExitOnZeroActiveConnections: with Istio's
// EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true and MINIMUM_DRAIN_DURATION=1s in
// the environment, SIGTERM drains as usual, but an idle keep-alive
// connection keeps the process up past the minimum (the drain duration,
// a minute, plays no part); once it is closed the process exits with
// status 0 within the one-second check.
func TestExitOnZeroActiveConnections(t *testing.T) {
	const minDrain = time.Second
	px := startProxy(t, time.Minute, "EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true", "MINIMUM_DRAIN_DURATION="+minDrain.String())
	idle := dial(t, px.ingress)
	if code, closes, body, err := idle.do("/idle"); err != nil || code != 200 || closes || body != "app /idle" {
		t.Fatalf("idle connection's first request: %d close=%v %q %v", code, closes, body, err)
	}
	start := time.Now()
	px.signal(t)
	px.waitDraining(t, time.Second)
	// Up past the minimum and at least one check while the connection is
	// open.
	for until := start.Add(minDrain + 1500*time.Millisecond); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
		if err, done := px.p.Exited(); done {
			t.Fatalf("trellis-proxy exited %v after SIGTERM (%v) with a connection open\n%s", time.Since(start), err, px.p.Tail(20))
		}
	}
	closed := time.Now()
	idle.c.Close()
	err, exitAt := px.waitExit(t, closed, 3*time.Second)
	t.Logf("trellis-proxy exited %v after the last connection closed (%v after SIGTERM): %v", exitAt, time.Since(start), err)
	if err != nil {
		t.Errorf("exit: %v, want status 0\n%s", err, px.p.Tail(20))
	}
}
