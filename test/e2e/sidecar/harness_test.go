//go:build linux

package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/testing/samples"
	"github.com/trellismesh/trellis/test/framework"
)

const (
	reviewsHost = "reviews.default.svc.cluster.local"
	reviewsPort = 9080
	echoHost    = "tcp-echo.default.svc.cluster.local"
	echoPort    = 9000
	proxyGID    = 1337 // `trellis proxy iptables` default --proxy-uid/--proxy-gid
	healthPort  = 15021
)

// workload is one namespace with its sidecar.
type workload struct {
	name   string // pod name, also the namespace suffix
	labels string // k=v,k2=v2
	ns     *framework.Netns
	proxy  *framework.Process
}

// captureMode is how the workloads' traffic reaches their sidecars:
// `trellis proxy iptables -m MODE` and `trellis proxy sidecar
// --interception-mode MODE`.
type captureMode string

const (
	captureRedirect captureMode = "REDIRECT" // nat REDIRECT, conntrack
	captureTProxy   captureMode = "TPROXY"   // mangle TPROXY, no conntrack
)

// rules are the iptables table and a chain that show the mode's rules are
// installed.
func (c captureMode) rules() (table, chain string) {
	if c == captureTProxy {
		return "mangle", "ISTIO_DIVERT"
	}
	return "nat", "ISTIO_REDIRECT"
}

// mesh is the whole topology.
type mesh struct {
	t       *testing.T
	capture captureMode
	bridge  *framework.Bridge
	cp      *framework.ControlPlane
	xdsAddr string
	// cpOpts restart the control plane where the sidecars expect it: the
	// same config directory and the address bound first (not :0).
	cpOpts framework.ControlPlaneOptions

	client   *workload
	reviews  map[string]*workload // by version
	echo     *workload
	backends map[string]*backend    // by version
	grpc     map[string]*grpcServer // by version, grpcPort in the reviews namespaces
	tls      map[string]*tlsBackend // by version, tlsPort in the reviews namespaces
	tlsCA    *framework.CA          // issued the TLS backends' certificates
	echoSrv  *echoServer

	http *http.Client // sockets in the client namespace (captured)
}

// newMesh builds the topology, starts the control plane, the backends and
// the sidecars with capture in the given mode, and waits until every
// sidecar is ready.
func newMesh(t *testing.T, capture captureMode) *mesh {
	t.Helper()
	framework.RequireNetns(t)
	if buildErr != nil {
		t.Fatalf("building trellis: %v", buildErr)
	}
	logAlways := os.Getenv("TRELLIS_E2E_LOGS") != ""
	m := &mesh{t: t, capture: capture, reviews: map[string]*workload{}, backends: map[string]*backend{},
		grpc: map[string]*grpcServer{}, tls: map[string]*tlsBackend{}, tlsCA: framework.NewCA(t, "e2e sidecar test CA")}

	// 1. The bridge (its address must exist before the control plane binds it).
	m.bridge = framework.NewBridge(t, fmt.Sprintf("trl%d", os.Getpid()%10000), netip.MustParsePrefix("10.88.0.0/24"))
	addr := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 88, 0, last}) }

	// 2. Namespaces, backends checked directly before capture exists.
	m.client = &workload{name: "client", labels: "app=productpage,version=v1"}
	m.client.ns = m.bridge.AddNetns(t, "client", addr(10))
	for i, v := range []string{"v1", "v2", "v3"} {
		w := &workload{name: "reviews-" + v, labels: "app=reviews,version=" + v}
		w.ns = m.bridge.AddNetns(t, w.name, addr(byte(11+i)))
		m.reviews[v] = w
		m.backends[v] = startBackend(t, w.ns, w.name)
		m.grpc[v] = startGRPCServer(t, w.ns, w.name)
		m.tls[v] = startTLSBackend(t, w.ns, w.name, m.tlsCA.Server(t, tlsNames[v]))
	}
	m.echo = &workload{name: "tcp-echo", labels: "app=tcp-echo,version=v1"}
	m.echo.ns = m.bridge.AddNetns(t, "tcp-echo", addr(14))
	m.echoSrv = startEcho(t, m.echo.ns)
	for v, w := range m.reviews {
		got, err := directGet(w.ns.Addr)
		if err != nil || got.Name != "reviews-"+v {
			t.Fatalf("backend reviews-%s not reachable directly (before capture): %+v, %v", v, got, err)
		}
	}
	if line, err := tcpEcho(context.Background(), net.Dial, netip.AddrPortFrom(m.echo.ns.Addr, echoPort).String(), "direct"); err != nil {
		t.Fatalf("tcp-echo not reachable directly (before capture): %q, %v", line, err)
	}

	// 3. Control plane on the bridge address.
	m.cp = framework.StartControlPlaneAt(t, "", m.bridge.Addr.String()+":0")
	m.xdsAddr = m.cp.XDSAddr().String()
	m.cpOpts = framework.ControlPlaneOptions{Dir: m.cp.Dir, XDSAddress: m.xdsAddr}
	m.cp.WriteFile(t, "services.yaml", servicesYAML(m))
	m.cp.WriteFile(t, "destination-rule.yaml", readSample(t, "destination-rule-reviews.yaml"))
	m.cp.WriteFile(t, "destination-rule-grpc-tls.yaml", subsetsDR("grpc-echo", grpcHost)+"---\n"+subsetsDR("tls-backend", tlsHost))

	// 4. Capture and sidecars.
	all := []*workload{m.client, m.reviews["v1"], m.reviews["v2"], m.reviews["v3"], m.echo}
	table, chain := capture.rules()
	for _, w := range all {
		out := w.ns.Run(t, trellisBin, "proxy", "iptables", "-m", string(capture))
		rules := w.ns.Run(t, "iptables-save", "-t", table)
		if !strings.Contains(rules, chain) || !strings.Contains(rules, "--gid-owner 1337") {
			t.Fatalf("%s: capture rules not installed:\n%s\n%s", w.name, out, rules)
		}
		m.startSidecar(t, w, logAlways)
	}
	// Sidecars drain for --drain-duration (5s) on SIGTERM: stop them all at
	// once (registered last, so run first; Process.Stop is idempotent)
	// rather than one after another in their own cleanups.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, w := range all {
			wg.Go(w.proxy.Stop)
		}
		wg.Wait()
	})
	for _, w := range all {
		m.waitReady(t, w)
		checkProxyCreds(t, w)
	}

	m.http = &http.Client{
		Transport: &http.Transport{
			DialContext:         m.client.ns.DialContext,
			MaxIdleConnsPerHost: 16,
			DisableCompression:  true,
		},
		Timeout: 5 * time.Second,
	}
	t.Cleanup(m.http.CloseIdleConnections)
	return m
}

// startSidecar runs `trellis proxy sidecar` in the workload's namespace as
// UID 0 (so that `ip netns exec` may enter the namespace, and with
// CAP_NET_ADMIN for TPROXY's transparent sockets) and GID 1337 (so that the
// capture rules' --gid-owner exemption applies to its sockets).
func (m *mesh) startSidecar(t *testing.T, w *workload, logAlways bool) {
	t.Helper()
	cmd := w.ns.Command(context.Background(), trellisBin, "proxy", "sidecar",
		"--xds-address", m.xdsAddr,
		"--ip", w.ns.Addr.String(),
		"--pod-name", w.name,
		"--namespace", "default",
		"--labels", w.labels,
		"--admin-address", "127.0.0.1:15000",
		"--health-address", fmt.Sprintf(":%d", healthPort),
		"--interception-mode", string(m.capture),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: proxyGID, Groups: []uint32{}}}
	w.proxy = framework.StartProcess(t, "sidecar "+w.name, cmd, logAlways)
}

// waitReady polls the sidecar's readiness endpoint (15021 is excluded from
// inbound capture) from the root namespace.
func (m *mesh) waitReady(t *testing.T, w *workload) {
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

// checkProxyCreds verifies the sidecar process really runs with GID 1337
// (the exemption that keeps its own traffic out of the capture).
func checkProxyCreds(t *testing.T, w *workload) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.proxy.Cmd.Process.Pid))
	if err != nil {
		t.Fatalf("sidecar %s: %v", w.name, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "Gid:" {
			if f[1] != "1337" || f[4] != "1337" {
				t.Fatalf("sidecar %s: %s (want real and fs GID 1337)", w.name, line)
			}
			return
		}
	}
	t.Fatalf("sidecar %s: no Gid line in /proc status", w.name)
}

// admin GETs path on a sidecar's admin endpoint (127.0.0.1:15000 inside its
// namespace).
func (w *workload) admin(path string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: w.ns.DialContext}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://127.0.0.1:15000" + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// dumpOnFailure logs the client sidecar's configuration when t fails.
func (m *mesh) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range []string{"/config_dump", "/clusters"} {
			out, err := m.client.admin(p)
			if len(out) > 20000 {
				out = out[:20000] + "\n... (truncated)"
			}
			t.Logf("client sidecar %s (err %v):\n%s", p, err, out)
		}
	})
}

// ---- configuration ----

func servicesYAML(m *mesh) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  ports:
  - number: %d
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tcp-echo
  namespace: default
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  ports:
  - number: %d
    name: tcp
    protocol: TCP
  resolution: STATIC
  workloadSelector:
    labels:
      app: tcp-echo
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: grpc-echo
  namespace: default
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  ports:
  - number: %d
    name: grpc
    protocol: GRPC
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tls-backend
  namespace: default
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  ports:
  - number: %d
    name: tls
    protocol: TLS
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
`, reviewsHost, reviewsPort, echoHost, echoPort, grpcHost, grpcPort, tlsHost, tlsPort)
	for _, w := range []*workload{m.client, m.reviews["v1"], m.reviews["v2"], m.reviews["v3"], m.echo} {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %s
  namespace: default
spec:
  address: %s
  labels:
`, w.name, w.ns.Addr)
		for _, kv := range strings.Split(w.labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&b, "    %s: %s\n", k, v)
		}
	}
	return b.String()
}

// subsetsDR is a DestinationRule named name for host with subsets v1..v3
// by the version label (the Bookinfo reviews rule's shape).
func subsetsDR(name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: %s
  namespace: default
spec:
  host: %s
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: v3
    labels:
      version: v3
`, name, host)
}

// waitListener waits until the workload's sidecar has the listener named
// name (for example "0.0.0.0_7070") in its configuration. A client must not
// connect to a port before its sidecar has the port's outbound listener: the
// connection would be tcp-proxied to its original destination through the
// passthrough chain and keep that path for as long as it lives (as in
// Envoy, listeners added later do not take over accepted connections), and
// clients that reuse one connection (gRPC's HTTP/2) would never see the new
// listener.
func (w *workload) waitListener(t *testing.T, name string) {
	t.Helper()
	framework.Eventually(t, propagation, func() error {
		out, err := w.admin("/config_dump")
		if err != nil {
			return fmt.Errorf("%s sidecar /config_dump: %w", w.name, err)
		}
		var dump struct {
			Listeners map[string]json.RawMessage `json:"listeners"`
		}
		if err := json.Unmarshal([]byte(out), &dump); err != nil {
			return fmt.Errorf("%s sidecar /config_dump: %w", w.name, err)
		}
		if _, ok := dump.Listeners[name]; !ok {
			return fmt.Errorf("%s sidecar has no listener %s yet", w.name, name)
		}
		return nil
	})
}

// ---- backends ----

// reply is what a backend answers: its name and what it saw.
type reply struct {
	Name    string      `json:"name"`
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Remote  string      `json:"remote"`
	Headers http.Header `json:"headers"`
	// BodyBytes and BodySHA256 describe the request body (streamPath only).
	BodyBytes  int64  `json:"bodyBytes,omitempty"`
	BodySHA256 string `json:"bodySha256,omitempty"`
}

// backend is an HTTP server in a reviews namespace on 0.0.0.0:9080.
type backend struct {
	name     string
	requests atomic.Int64 // all requests
	flaky    atomic.Int64 // requests to /flaky
	fail     atomic.Bool  // when set, every request is answered 503
	streamed atomic.Int64 // body bytes of the current streamPath request read so far

	mu    sync.Mutex
	last  reply
	hosts map[string]int // requests by Host header
}

func startBackend(t *testing.T, ns *framework.Netns, name string) *backend {
	b := &backend{name: name, hosts: map[string]int{}}
	l := ns.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", reviewsPort))
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

// ServeHTTP answers with JSON; /flaky fails every other request with 503;
// in fail mode every request is answered 503; wsPath upgrades to a
// WebSocket echo (websocket_test.go); streamPath reads the body as it
// comes (body_test.go).
func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == wsPath {
		b.serveWebSocket(w, r) // not counted: a long-lived connection, not a request
		return
	}
	if r.URL.Path == streamPath {
		b.serveStream(w, r)
		return
	}
	b.requests.Add(1)
	io.Copy(io.Discard, r.Body)
	rep := reply{Name: b.name, Host: r.Host, Path: r.URL.Path, Remote: r.RemoteAddr, Headers: r.Header.Clone()}
	b.mu.Lock()
	b.last = rep
	b.hosts[r.Host]++
	b.mu.Unlock()
	if b.fail.Load() {
		http.Error(w, b.name+": failing", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path == "/flaky" && b.flaky.Add(1)%2 == 1 {
		http.Error(w, b.name+": flaky failure", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

// hostCounts is a copy of the requests-by-Host histogram.
func (b *backend) hostCounts() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(map[string]int, len(b.hosts))
	for h, n := range b.hosts {
		c[h] = n
	}
	return c
}

func (b *backend) lastReply() reply {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func (m *mesh) backendRequests() int64 {
	var n int64
	for _, b := range m.backends {
		n += b.requests.Load()
	}
	return n
}

// directGet asks a backend from the root namespace (no capture there).
func directGet(ip netip.Addr) (reply, error) {
	var rep reply
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/", netip.AddrPortFrom(ip, reviewsPort)))
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&rep)
	return rep, err
}

// echoServer answers each connection with "tcp-echo peer=<remote>\n",
// echoes everything it reads and, once the client has half-closed (EOF),
// writes "eof after <n> bytes\n" and closes: that last line can only reach
// the client if its half-close travelled through both sidecars while the
// other direction stayed open.
type echoServer struct{ conns atomic.Int64 }

func startEcho(t *testing.T, ns *framework.Netns) *echoServer {
	e := &echoServer{}
	l := ns.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", echoPort))
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e.conns.Add(1)
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				fmt.Fprintf(c, "tcp-echo peer=%s\n", c.RemoteAddr())
				n, err := io.Copy(c, c)
				if err == nil {
					fmt.Fprintf(c, "eof after %d bytes\n", n)
				}
			}()
		}
	}()
	return e
}

// tcpEcho connects with dial, reads the greeting, sends msg and checks the
// echo; it returns the greeting.
func tcpEcho(ctx context.Context, dial func(network, addr string) (net.Conn, error), addr, msg string) (string, error) {
	c, err := dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil {
		return greeting, fmt.Errorf("reading greeting: %w", err)
	}
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return greeting, err
	}
	echo, err := r.ReadString('\n')
	if err != nil {
		return greeting, fmt.Errorf("reading echo: %w", err)
	}
	if strings.TrimSpace(echo) != msg {
		return greeting, fmt.Errorf("echo %q, want %q", echo, msg)
	}
	return strings.TrimSpace(greeting), nil
}

// ---- client ----

// result is a histogram of n requests.
type result struct {
	N      int
	Names  map[string]int // 200 replies by backend name
	Codes  map[int]int
	Errors map[string]int
	Bodies map[string]int // non-200 bodies (first 80 bytes)
	Lat    []time.Duration
	Last   reply // the last 200 reply
}

func (r result) String() string {
	s := fmt.Sprintf("n=%d names=%v codes=%v", r.N, r.Names, r.Codes)
	if len(r.Errors) > 0 {
		s += fmt.Sprintf(" errors=%v", r.Errors)
	}
	if len(r.Bodies) > 0 {
		s += fmt.Sprintf(" bodies=%v", r.Bodies)
	}
	if len(r.Lat) > 0 {
		s += fmt.Sprintf(" latency min=%v p50=%v max=%v", r.min(), r.pct(50), r.max())
	}
	return s
}

func (r result) min() time.Duration { return r.pct(0) }
func (r result) max() time.Duration { return r.pct(100) }
func (r result) pct(p int) time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	l := append([]time.Duration(nil), r.Lat...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[(len(l)-1)*p/100]
}

// load sends n GET requests for path from the client namespace (captured)
// to the reviews service, conc at a time over keep-alive connections; hdr
// are extra request headers ("k", "v", ...).
func (m *mesh) load(n, conc int, path string, hdr ...string) result {
	res := result{N: n, Names: map[string]int{}, Codes: map[int]int{}, Errors: map[string]int{}, Bodies: map[string]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				code, rep, body, lat, err := m.get(path, hdr...)
				mu.Lock()
				switch {
				case err != nil:
					res.Errors[trim(err.Error())]++
				default:
					res.Codes[code]++
					res.Lat = append(res.Lat, lat)
					if code == http.StatusOK && rep.Name != "" {
						res.Names[rep.Name]++
						res.Last = rep
					} else {
						res.Bodies[trim(body)]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

// get sends one request to the reviews service through the client's capture.
// The destination is reviews-v1's address: only the client sidecar's
// routing can take it elsewhere.
func (m *mesh) get(path string, hdr ...string) (code int, rep reply, body string, lat time.Duration, err error) {
	url := fmt.Sprintf("http://%s%s", netip.AddrPortFrom(m.reviews["v1"].ns.Addr, reviewsPort), path)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, rep, "", 0, err
	}
	req.Host = fmt.Sprintf("%s:%d", reviewsHost, reviewsPort)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := m.http.Do(req)
	if err != nil {
		return 0, rep, "", time.Since(start), err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	lat = time.Since(start)
	if err != nil {
		return resp.StatusCode, rep, "", lat, fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		if jerr := json.Unmarshal(b, &rep); jerr != nil {
			rep = reply{}
		}
	}
	return resp.StatusCode, rep, string(b), lat, nil
}

func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// ---- configuration changes ----

// applyVS writes the reviews VirtualService(s) file.
func (m *mesh) applyVS(t *testing.T, content string) {
	t.Helper()
	m.cp.WriteFile(t, "virtual-service.yaml", content)
}

// readSample reads a Bookinfo networking sample.
func readSample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(samplePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// until polls: n requests per round until check accepts the histogram.
func (m *mesh) until(t *testing.T, timeout time.Duration, n int, path string, hdr []string, check func(result) error) result {
	t.Helper()
	var last result
	framework.Eventually(t, timeout, func() error {
		last = m.load(n, 4, path, hdr...)
		return check(last)
	})
	return last
}

// only accepts histograms where every request was answered 200 by name.
func only(name string) func(result) error {
	return func(r result) error {
		if r.Names[name] != r.N {
			return fmt.Errorf("want all %d on %s: %v", r.N, name, r)
		}
		return nil
	}
}

// markerHeader is a request header a VirtualService sets (headers.request
// .set) so that the backends' replies show which one routed them, when the
// previous configuration sends traffic to the same place. (Not x-trellis-*:
// the sidecars strip those as their own internal headers.)
const markerHeader = "X-E2e-Vs"

// marked is only(name), with the last reply routed by the VirtualService
// that sets markerHeader to marker. A sidecar swaps its routes at once, so
// the requests after that reply are routed by it too.
func marked(name, marker string) func(result) error {
	return func(r result) error {
		if err := only(name)(r); err != nil {
			return err
		}
		if got := r.Last.Headers.Get(markerHeader); got != marker {
			return fmt.Errorf("%s: %q, want %q (the VirtualService not in force yet): %v", markerHeader, got, marker, r)
		}
		return nil
	}
}

// samplePath is the path of a Bookinfo networking sample.
func samplePath(t *testing.T, name string) string {
	return samples.Path(t, "bookinfo/networking/"+name)
}
