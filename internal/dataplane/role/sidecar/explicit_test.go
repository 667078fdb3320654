package sidecar_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/test/framework"
)

// localMesh is a control plane, HTTP and TCP backends on loopback, and one
// sidecar with an explicit proxy: local mode without root or namespaces.
type localMesh struct {
	cp      *framework.ControlPlane
	sc      *sidecar.Sidecar
	proxy   string // explicit proxy host:port
	done    chan error
	cancel  context.CancelFunc
	backend map[string]string // name → host:port
}

// loopbackIP is an address of 127/8 unlikely to be used by other tests
// running at the same time (the sidecar binds 15001 and 15006 there).
func loopbackIP() string {
	pid := os.Getpid()
	return fmt.Sprintf("127.%d.%d.%d", 100+pid%100, (pid/100)%250+1, time.Now().Nanosecond()%250+2)
}

// httpBackend answers "<name> <method> <host> <path>".
func httpBackend(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s", name, r.Method, r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// echoBackend answers each line with "echo:<line>".
func echoBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo:"+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func portOf(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const meshYAML = `apiVersion: networking.istio.io/v1
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
kind: ServiceEntry
metadata: {name: details, namespace: default}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: tcp-echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec: {address: 127.0.0.1, labels: {app: reviews}, ports: {http: %s}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-1, namespace: default}
spec: {address: 127.0.0.1, labels: {app: details}, ports: {http: %s}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-1, namespace: default}
spec: {address: 127.0.0.1, labels: {app: tcp-echo}, ports: {tcp: %s}}
`

// startLocalMesh runs the control plane and a sidecar (not started: call
// run) with an explicit proxy on a free loopback port.
func startLocalMesh(t *testing.T, drain time.Duration) *localMesh {
	t.Helper()
	return startLocalMeshWith(t, drain, nil)
}

// startLocalMeshWith is startLocalMesh with the sidecar's configuration
// changed by with (if not nil) before New.
func startLocalMeshWith(t *testing.T, drain time.Duration, with func(*sidecar.Config)) *localMesh {
	t.Helper()
	m := &localMesh{backend: map[string]string{
		"reviews": httpBackend(t, "reviews"),
		"details": httpBackend(t, "details"),
		"echo":    echoBackend(t),
	}}
	m.cp = framework.StartControlPlane(t, "")
	m.cp.WriteFile(t, "mesh.yaml", fmt.Sprintf(meshYAML, portOf(t, m.backend["reviews"]), portOf(t, m.backend["details"]), portOf(t, m.backend["echo"])))
	ip := loopbackIP()
	node, err := sidecar.NodeConfig{IP: ip, PodName: "client-1", Namespace: "default", Labels: map[string]string{"app": "client"}}.Node()
	if err != nil {
		t.Fatal(err)
	}
	cfg := sidecar.Config{
		XDSAddress:           m.cp.XDSAddr().String(),
		Node:                 node,
		AdminAddress:         "127.0.0.1:0",
		HealthAddress:        "127.0.0.1:0",
		MetricsAddress:       "-",
		BindAddress:          ip,
		DrainDuration:        drain,
		ExplicitProxyAddress: ip + ":0",
		Logger:               slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if with != nil {
		with(&cfg)
	}
	m.sc, err = sidecar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.done = make(chan error, 1)
	go func() { m.done <- m.sc.Run(ctx) }()
	t.Cleanup(func() {
		m.sc.Stop()
		cancel()
		select {
		case <-m.done:
		case <-time.After(20 * time.Second):
			t.Error("sidecar did not stop")
		}
	})
	framework.Eventually(t, 20*time.Second, func() error {
		if !m.sc.Ready() {
			return fmt.Errorf("sidecar not ready: %+v", m.sc.Status())
		}
		a, ok := m.sc.Addr("explicit_proxy")
		if !ok {
			return fmt.Errorf("explicit proxy not bound")
		}
		m.proxy = a.String()
		return nil
	})
	return m
}

// client is an http.Client whose requests go through the explicit proxy.
func (m *localMesh) client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: m.proxy})}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
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

// connect opens a CONNECT tunnel through the proxy and returns the
// connection and the response status.
func connect(t *testing.T, proxy, target string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
	}
	return c, r, resp.StatusCode
}

// TestExplicitProxy drives the sidecar's explicit proxy with an
// http.Client whose Proxy is set: absolute-form requests are routed by
// their authority's port to the route configuration of that port (two
// HTTP services on two ports), short names resolve in the proxy's
// namespace, an origin-form request is routed by Host, unknown hosts get
// 404, and CONNECT opens a tunnel to a TCP service (403 for a target with
// no service).
func TestExplicitProxy(t *testing.T) {
	m := startLocalMesh(t, time.Second)
	c := m.client(t)
	framework.Eventually(t, 20*time.Second, func() error {
		code, body, err := get(c, "http://details.default.svc.cluster.local:8080/ready")
		if err != nil || code != 200 {
			return fmt.Errorf("details not routed yet: %d %q %v", code, body, err)
		}
		return nil
	})
	for _, tc := range []struct {
		name, url string
		code      int
		prefix    string
	}{
		{"FQDN on 9080", "http://reviews.default.svc.cluster.local:9080/r/1", 200, "reviews GET reviews.default.svc.cluster.local:9080 /r/1"},
		{"FQDN on 8080", "http://details.default.svc.cluster.local:8080/d", 200, "details GET details.default.svc.cluster.local:8080 /d"},
		{"short name", "http://reviews:9080/short", 200, "reviews GET reviews:9080 /short"},
		{"name.namespace", "http://details.default:8080/x", 200, "details GET details.default:8080 /x"},
		{"service on another port", "http://reviews.default.svc.cluster.local:8080/", 404, ""},
		{"unknown host", "http://example.com:9080/", 404, ""},
		{"port without a route configuration", "http://reviews.default.svc.cluster.local:1234/", 404, ""},
	} {
		code, body, err := get(c, tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if code != tc.code || !strings.HasPrefix(body, tc.prefix) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.prefix)
		}
	}

	// Origin form with a Host header, as a client configured with the
	// proxy as its upstream sends.
	raw, err := net.DialTimeout("tcp", m.proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(raw, "GET /origin HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "reviews GET reviews.default.svc.cluster.local:9080 /origin" {
		t.Errorf("origin form: %d %q", resp.StatusCode, b)
	}

	// CONNECT to the TCP service, by FQDN and by short name.
	for _, target := range []string{"tcp-echo.default.svc.cluster.local:9000", "tcp-echo:9000"} {
		conn, r, code := connect(t, m.proxy, target)
		if code != 200 {
			t.Fatalf("CONNECT %s: %d", target, code)
		}
		for _, line := range []string{"one", "two"} {
			fmt.Fprintf(conn, "%s\n", line)
			got, err := r.ReadString('\n')
			if err != nil || got != "echo:"+line+"\n" {
				t.Errorf("tunnel to %s: %q, %v", target, got, err)
			}
		}
	}
	for _, target := range []string{"example.com:443", "tcp-echo.default.svc.cluster.local:9001", "127.0.0.1:" + portOf(t, m.backend["echo"])} {
		if _, _, code := connect(t, m.proxy, target); code != http.StatusForbidden {
			t.Errorf("CONNECT %s: %d, want 403", target, code)
		}
	}
}

// TestTermination: once Run's context is done the sidecar reports
// DRAINING on its readiness endpoint, keeps serving for the drain
// duration (outbound through the explicit proxy included), then closes
// its listeners and Run returns nil.
func TestTermination(t *testing.T) {
	const drain = 1500 * time.Millisecond
	m := startLocalMesh(t, drain)
	c := m.client(t)
	framework.Eventually(t, 20*time.Second, func() error {
		code, _, err := get(c, "http://reviews.default.svc.cluster.local:9080/")
		if err != nil || code != 200 {
			return fmt.Errorf("not routed yet: %d %v", code, err)
		}
		return nil
	})
	health, ok := m.sc.Addr("health")
	if !ok {
		t.Fatal("health server not bound")
	}
	readyURL := "http://" + health.String() + "/healthz/ready"
	hc := &http.Client{Timeout: 2 * time.Second}
	if code, body, err := get(hc, readyURL); err != nil || code != 200 {
		t.Fatalf("before termination: %d %q %v", code, body, err)
	}
	const reviews = "http://reviews.default.svc.cluster.local:9080/"
	out := dialKeepAlive(t, m.proxy)
	if code, conn, _, err := out.do(reviews+"before", "reviews.default.svc.cluster.local:9080"); err != nil || code != 200 || conn != "" {
		t.Fatalf("explicit proxy before termination: %d Connection %q %v", code, conn, err)
	}

	start := time.Now()
	m.cancel() // what SIGTERM does
	framework.Eventually(t, 5*time.Second, func() error {
		code, body, err := get(hc, readyURL)
		if err != nil || code != 503 || !strings.HasPrefix(body, "DRAINING") {
			return fmt.Errorf("readiness during drain: %d %q %v", code, body, err)
		}
		return nil
	})
	// Still serving during the drain period.
	if code, body, err := get(c, "http://reviews.default.svc.cluster.local:9080/during"); err != nil || code != 200 {
		t.Errorf("request during the drain: %d %q %v", code, body, err)
	}
	// Termination drains inbound only: the application's connections
	// through the explicit proxy are not asked to close.
	if code, conn, _, err := out.do(reviews+"during", "reviews.default.svc.cluster.local:9080"); err != nil || code != 200 || conn != "" {
		t.Errorf("explicit proxy during the drain, established connection: %d Connection %q %v; want 200 kept alive", code, conn, err)
	}
	select {
	case err := <-m.done:
		t.Fatalf("Run returned %v after %v, before the drain duration", err, time.Since(start))
	default:
	}
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("Run: %v, want nil (exit 0)", err)
		}
		if el := time.Since(start); el < drain {
			t.Errorf("Run returned after %v, before the drain duration %v", el, drain)
		}
	case <-time.After(drain + 10*time.Second):
		t.Fatal("Run did not return after the drain duration")
	}
	if conn, err := net.DialTimeout("tcp", m.proxy, time.Second); err == nil {
		conn.Close()
		t.Error("explicit proxy still accepts after termination")
	}
	m.done <- nil // for the cleanup
}

// TestStopCutsDrainShort: Stop during the drain period ends Run at once.
func TestStopCutsDrainShort(t *testing.T) {
	m := startLocalMesh(t, time.Minute)
	m.cancel()
	framework.Eventually(t, 5*time.Second, func() error {
		if m.sc.Ready() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	m.sc.Stop()
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end the drain")
	}
	m.done <- nil
}

// TestExitOnZeroActiveConnections: with Istio's
// EXIT_ON_ZERO_ACTIVE_CONNECTIONS, termination waits the minimum drain
// duration, then ends Run once no downstream connection is left (checked
// every second), whatever DrainDuration says: without connections right
// after the minimum; with one open (the application's keep-alive
// connection to the explicit proxy), past the minimum and until it is
// closed.
func TestExitOnZeroActiveConnections(t *testing.T) {
	const minDrain = 300 * time.Millisecond
	exitOnZero := func(c *sidecar.Config) {
		c.ExitOnZeroActiveConnections = true
		c.MinimumDrainDuration = minDrain
	}
	t.Run("no connection", func(t *testing.T) {
		m := startLocalMeshWith(t, time.Minute, exitOnZero)
		start := time.Now()
		m.cancel()
		select {
		case err := <-m.done:
			el := time.Since(start)
			t.Logf("Run returned %v after termination", el)
			if err != nil {
				t.Errorf("Run: %v, want nil", err)
			}
			if el < minDrain {
				t.Errorf("Run returned after %v, before the minimum drain duration %v", el, minDrain)
			}
		case <-time.After(minDrain + 700*time.Millisecond):
			t.Fatalf("Run did not return right after the minimum drain duration %v without connections", minDrain)
		}
		m.done <- nil // for the cleanup
	})
	t.Run("connection open", func(t *testing.T) {
		m := startLocalMeshWith(t, time.Minute, exitOnZero)
		// Once routed (the configuration settled: a listener update
		// would retire the connection's listener), one kept-alive
		// connection, the client's pool closed.
		c := m.client(t)
		framework.Eventually(t, 20*time.Second, func() error {
			if code, _, err := get(c, "http://reviews.default.svc.cluster.local:9080/"); err != nil || code != 200 {
				return fmt.Errorf("not routed yet: %d %v", code, err)
			}
			return nil
		})
		c.CloseIdleConnections()
		out := dialKeepAlive(t, m.proxy)
		if code, conn, _, err := out.do("http://reviews.default.svc.cluster.local:9080/", "reviews.default.svc.cluster.local:9080"); err != nil || code != 200 || conn != "" {
			t.Fatalf("explicit proxy: %d Connection %q %v; want 200 kept alive", code, conn, err)
		}
		m.cancel()
		select {
		case err := <-m.done:
			m.done <- err // for the cleanup
			t.Fatalf("Run returned (%v) with a connection open", err)
		case <-time.After(minDrain + 1200*time.Millisecond): // the minimum and a check
		}
		closed := time.Now()
		out.c.Close()
		select {
		case err := <-m.done:
			t.Logf("Run returned %v after the last connection closed", time.Since(closed))
			if err != nil {
				t.Errorf("Run: %v, want nil", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return within the one-second check after the last connection closed")
		}
		m.done <- nil
	})
}
