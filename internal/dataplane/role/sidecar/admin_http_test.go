package sidecar_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellismesh/trellis/internal/cli/proxyconfig"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/test/framework"
)

// adminYAML: reviews (one endpoint), ratings (a good and a failing
// endpoint, outlier detection ejecting at the first 5xx) and the
// workload's own service, client, whose Sidecar gives the proxy an
// ingress listener on the workload's address (captureMode NONE, as
// trellis up generates) forwarding to the application.
const adminYAML = `apiVersion: networking.istio.io/v1
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
spec: {address: 127.0.0.1, labels: {app: reviews}, ports: {http: %[1]s}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-good, namespace: default}
spec: {address: 127.0.0.1, labels: {app: ratings}, ports: {http: %[2]s}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-bad, namespace: default}
spec: {address: 127.0.0.1, labels: {app: ratings}, ports: {http: %[3]s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings.default.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 10m, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
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
spec: {address: %[4]s, labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client-1, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  ingress:
  - port: {number: 18080, name: http, protocol: HTTP}
    bind: %[4]s
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:%[5]s
`

// adminMesh is a control plane and one running sidecar (client-1) in
// local mode, driven only through its sockets: the admin and health
// endpoints over HTTP, the explicit proxy (outbound), the ingress
// listener (inbound) and the capture listeners 15001 and 15006.
type adminMesh struct {
	sc     *sidecar.Sidecar
	ip     string
	admin  string // http://host:port of the admin endpoint
	ready  string // the health port's /healthz/ready URL
	proxy  string // explicit proxy host:port
	cancel context.CancelFunc
	exited chan struct{} // closed when Run returned, with runErr
	runErr error
	// backend is host:port of each backend: reviews, ratings-good,
	// ratings-bad, app.
	backend map[string]string
}

// Addresses of the proxy's listening sockets, by role.
func (m *adminMesh) ingress() string  { return net.JoinHostPort(m.ip, "18080") }
func (m *adminMesh) inbound() string  { return net.JoinHostPort(m.ip, "15006") }
func (m *adminMesh) outbound() string { return net.JoinHostPort(m.ip, "15001") }

// statusBackend answers every request with code and "<name> <path>".
func statusBackend(t *testing.T, name string, code int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startAdminMesh starts the control plane and the sidecar and waits until
// both the explicit proxy and the ingress listener serve.
func startAdminMesh(t *testing.T, drain time.Duration) *adminMesh {
	t.Helper()
	m := &adminMesh{ip: loopbackIP(), exited: make(chan struct{}), backend: map[string]string{
		"reviews":      httpBackend(t, "reviews"),
		"ratings-good": statusBackend(t, "ratings-good", http.StatusOK),
		"ratings-bad":  statusBackend(t, "ratings-bad", http.StatusInternalServerError),
		"app":          httpBackend(t, "app"),
	}}
	cp := framework.StartControlPlane(t, "")
	cp.WriteFile(t, "mesh.yaml", fmt.Sprintf(adminYAML, portOf(t, m.backend["reviews"]), portOf(t, m.backend["ratings-good"]),
		portOf(t, m.backend["ratings-bad"]), m.ip, portOf(t, m.backend["app"])))
	node, err := sidecar.NodeConfig{IP: m.ip, PodName: "client-1", Namespace: "default", Labels: map[string]string{"app": "client"}}.Node()
	if err != nil {
		t.Fatal(err)
	}
	m.sc, err = sidecar.New(sidecar.Config{
		XDSAddress:           cp.XDSAddr().String(),
		Node:                 node,
		AdminAddress:         "127.0.0.1:0",
		HealthAddress:        "127.0.0.1:0",
		MetricsAddress:       "-",
		BindAddress:          m.ip,
		DrainDuration:        drain,
		ExplicitProxyAddress: m.ip + ":0",
		Logger:               slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		m.runErr = m.sc.Run(ctx)
		close(m.exited)
	}()
	t.Cleanup(func() {
		m.sc.Stop()
		cancel()
		select {
		case <-m.exited:
		case <-time.After(20 * time.Second):
			t.Error("sidecar did not stop")
		}
	})
	framework.Eventually(t, 20*time.Second, func() error {
		admin, ok1 := m.sc.Addr("admin")
		health, ok2 := m.sc.Addr("health")
		proxy, ok3 := m.sc.Addr("explicit_proxy")
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("admin, health or explicit proxy not bound yet")
		}
		m.admin, m.ready, m.proxy = "http://"+admin.String(), "http://"+health.String()+"/healthz/ready", proxy.String()
		return nil
	})
	c := m.client(t)
	hc := &http.Client{Timeout: 2 * time.Second}
	framework.Eventually(t, 20*time.Second, func() error {
		if code, body, err := get(hc, m.ready); err != nil || code != 200 {
			return fmt.Errorf("readiness: %d %q %v", code, body, err)
		}
		if code, body, err := get(c, "http://reviews.default.svc.cluster.local:9080/"); err != nil || code != 200 {
			return fmt.Errorf("outbound not routed yet: %d %q %v", code, body, err)
		}
		if code, body, err := get(hc, "http://"+m.ingress()+"/"); err != nil || code != 200 || !strings.HasPrefix(body, "app GET") {
			return fmt.Errorf("ingress not serving yet: %d %q %v", code, body, err)
		}
		return nil
	})
	return m
}

func (m *adminMesh) client(t *testing.T) *http.Client {
	return (&localMesh{proxy: m.proxy}).client(t)
}

// post sends an empty POST to the admin endpoint.
func (m *adminMesh) post(t *testing.T, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(m.admin+path, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// waitExit waits up to d for Run to return and returns its error.
func (m *adminMesh) waitExit(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-m.exited:
		return m.runErr
	case <-time.After(d):
		t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

// accepts reports whether a TCP connection to addr is accepted.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// keepAlive is one client connection on which HTTP/1.1 requests are sent
// one after the other.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

// do sends GET target (origin or absolute form) with Host host and reads
// the response; it returns the status, the Connection header and the body.
func (k *keepAlive) do(target, host string) (code int, connection, body string, err error) {
	k.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host); err != nil {
		return 0, "", "", err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	// net/http moves "Connection: close" to resp.Close.
	if resp.Close {
		connection = "close"
	}
	return resp.StatusCode, connection, string(b), err
}

// closed reports whether the peer closed the connection within d.
func (k *keepAlive) closed(d time.Duration) bool {
	k.c.SetReadDeadline(time.Now().Add(d))
	_, err := k.r.ReadByte()
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// adminGet GETs path on the admin endpoint and checks the status and the
// Content-Type's media type.
func (m *adminMesh) adminGet(path, contentType string) ([]byte, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(m.admin + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, contentType) {
		return nil, fmt.Errorf("%s: %s, Content-Type %q, want 200 and %s: %q", path, resp.Status, ct, contentType, b)
	}
	return b, nil
}

// adminCluster is the part of a /clusters?format=trellis entry (Trellis's
// own view) the tests read, under the field names the endpoint writes.
type adminCluster struct {
	Name    string
	Warming bool
	Hosts   []struct {
		Address   string
		EDSHealth corev3.HealthStatus
		Health    int // host.Health: 0 healthy, 1 degraded, 2 unhealthy
		Outlier   struct {
			Ejected   bool
			Ejections uint32
		}
	}
	Outlier struct {
		Active        int
		EnforcedTotal uint64
	}
}

// cluster GETs /clusters?format=trellis and returns the cluster named
// name.
func (m *adminMesh) cluster(name string) (adminCluster, error) {
	b, err := m.adminGet("/clusters?format=trellis", "application/json")
	if err != nil {
		return adminCluster{}, err
	}
	var all []adminCluster
	if err := json.Unmarshal(b, &all); err != nil {
		return adminCluster{}, fmt.Errorf("/clusters?format=trellis: %w", err)
	}
	for _, c := range all {
		if c.Name == name {
			return c, nil
		}
	}
	return adminCluster{}, fmt.Errorf("/clusters?format=trellis has no cluster %q (%d clusters)", name, len(all))
}

// envoyText GETs /clusters (Envoy's text form) and returns the lines of
// the cluster named name, without the "<name>::" prefix.
func (m *adminMesh) envoyText(name string) (map[string]bool, error) {
	b, err := m.adminGet("/clusters", "text/plain")
	if err != nil {
		return nil, err
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.Contains(l, "::") {
			return nil, fmt.Errorf("/clusters: line %q is not <cluster>::<field>::<value>", l)
		}
		if rest, ok := strings.CutPrefix(l, name+"::"); ok {
			lines[rest] = true
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("/clusters has no line of cluster %q:\n%s", name, b)
	}
	return lines, nil
}

// envoyJSON GETs /clusters?format=json (Envoy's envoy.admin.v3.Clusters)
// and returns the cluster named name, and the endpoints
// proxyconfig.ParseAdminClusters (trellis proxy-config endpoints --admin)
// reads from the same body, those of name.
func (m *adminMesh) envoyJSON(name string) (*adminv3.ClusterStatus, []proxyconfig.EndpointRow, error) {
	b, err := m.adminGet("/clusters?format=json", "application/json")
	if err != nil {
		return nil, nil, err
	}
	var all adminv3.Clusters
	if err := protojson.Unmarshal(b, &all); err != nil {
		return nil, nil, fmt.Errorf("/clusters?format=json: %w", err)
	}
	rows, err := proxyconfig.ParseAdminClusters(b)
	if err != nil {
		return nil, nil, fmt.Errorf("/clusters?format=json: ParseAdminClusters: %w", err)
	}
	rows = slices.DeleteFunc(rows, func(r proxyconfig.EndpointRow) bool { return r.Cluster != name })
	for _, c := range all.GetClusterStatuses() {
		if c.GetName() == name {
			return c, rows, nil
		}
	}
	return nil, nil, fmt.Errorf("/clusters?format=json has no cluster %q (%d clusters)", name, len(all.GetClusterStatuses()))
}

// checkClusterForms checks the ratings cluster in the three forms of
// /clusters: Envoy's text and JSON, read as istioctl and operators do,
// and Trellis's own; ejected is the host outlier detection ejected ("" for
// none).
func (m *adminMesh) checkClusterForms(name, ejected string) error {
	good, bad := m.backend["ratings-good"], m.backend["ratings-bad"]

	c, err := m.cluster(name)
	if err != nil {
		return err
	}
	if c.Warming || len(c.Hosts) != 2 {
		return fmt.Errorf("trellis form: warming %v, %d hosts, want 2: %+v", c.Warming, len(c.Hosts), c)
	}
	wantActive := 0
	if ejected != "" {
		wantActive = 1
	}
	if c.Outlier.Active != wantActive || (ejected != "" && c.Outlier.EnforcedTotal < 1) {
		return fmt.Errorf("trellis form: cluster outlier stats %+v, want %d active", c.Outlier, wantActive)
	}
	seen := map[string]bool{}
	for _, h := range c.Hosts {
		seen[h.Address] = true
		wantEjected := h.Address == ejected
		wantHealth := 0
		if wantEjected {
			wantHealth = 2
		}
		if h.EDSHealth != corev3.HealthStatus_HEALTHY || h.Health != wantHealth || h.Outlier.Ejected != wantEjected || (wantEjected && h.Outlier.Ejections < 1) {
			return fmt.Errorf("trellis form: host %s: EDS %v, health %d, outlier %+v; want HEALTHY, %d, ejected %v", h.Address, h.EDSHealth, h.Health, h.Outlier, wantHealth, wantEjected)
		}
	}
	if !seen[good] || !seen[bad] {
		return fmt.Errorf("trellis form: hosts %v, want %s and %s", seen, good, bad)
	}

	lines, err := m.envoyText(name)
	if err != nil {
		return err
	}
	want := []string{
		"observability_name::" + name,
		"eds_service_name::" + name,
		"added_via_api::true",
		"default_priority::max_connections::4294967295", // Istio's default thresholds
		"high_priority::max_retries::3",                 // Envoy's default
	}
	for _, host := range []string{good, bad} {
		flags := "healthy"
		if host == ejected {
			flags = "/failed_outlier_check"
		}
		want = append(want, host+"::health_flags::"+flags, host+"::weight::1", host+"::priority::0", host+"::rq_active::0")
	}
	for _, w := range want {
		if !lines[w] {
			return fmt.Errorf("text form: no line %q among %s's:\n%s", name+"::"+w, name, strings.Join(slices.Sorted(maps.Keys(lines)), "\n"))
		}
	}

	cs, rows, err := m.envoyJSON(name)
	if err != nil {
		return err
	}
	if cs.GetObservabilityName() != name || cs.GetEdsServiceName() != name || !cs.GetAddedViaApi() || len(cs.GetHostStatuses()) != 2 {
		return fmt.Errorf("JSON form: %v", cs)
	}
	for _, h := range cs.GetHostStatuses() {
		sa := h.GetAddress().GetSocketAddress()
		addr := net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue()))
		if hs := h.GetHealthStatus(); hs.GetEdsHealthStatus() != corev3.HealthStatus_HEALTHY || hs.GetFailedOutlierCheck() != (addr == ejected) {
			return fmt.Errorf("JSON form: host %s: health %v, want HEALTHY, failed_outlier_check %v", addr, hs, addr == ejected)
		}
	}
	var got, wantRows []string
	for _, r := range rows {
		got = append(got, r.Endpoint+" "+r.Status+" "+r.Outlier)
	}
	for _, host := range []string{good, bad} {
		outlier := "OK"
		if host == ejected {
			outlier = "FAILED"
		}
		wantRows = append(wantRows, host+" HEALTHY "+outlier)
	}
	slices.Sort(got)
	slices.Sort(wantRows)
	if !slices.Equal(got, wantRows) {
		return fmt.Errorf("proxy-config endpoints from the JSON form: %q, want %q", got, wantRows)
	}
	return nil
}

// TestAdminClusters reads GET /clusters on the admin port, in Envoy's
// text form, Envoy's JSON form (?format=json, as istioctl proxy-config
// endpoint reads it) and Trellis's own (?format=trellis), while traffic
// flows through the explicit proxy: the ratings cluster lists both
// endpoints as EDS HEALTHY, healthy and not ejected; once the failing
// endpoint answered a 500 (consecutive5xxErrors: 1) all three forms show
// it ejected (health_flags /failed_outlier_check, failed_outlier_check,
// Outlier.Ejected with the cluster's ejection counters), and requests only
// reach the good endpoint.
func TestAdminClusters(t *testing.T) {
	m := startAdminMesh(t, time.Second)
	const name = "outbound|9080||ratings.default.svc.cluster.local"
	bad := m.backend["ratings-bad"]

	if err := m.checkClusterForms(name, ""); err != nil {
		t.Fatal(err)
	}

	hc := m.client(t)
	var failed bool
	for i := 0; i < 100 && !failed; i++ {
		code, _, err := get(hc, "http://ratings.default.svc.cluster.local:9080/")
		if err != nil {
			t.Fatal(err)
		}
		failed = code == http.StatusInternalServerError
	}
	if !failed {
		t.Fatal("100 requests never reached the failing endpoint")
	}
	framework.Eventually(t, 5*time.Second, func() error { return m.checkClusterForms(name, bad) })
	for range 10 {
		if code, body, err := get(hc, "http://ratings.default.svc.cluster.local:9080/"); err != nil || code != 200 || !strings.HasPrefix(body, "ratings-good") {
			t.Fatalf("after the ejection: %d %q %v, want only ratings-good", code, body, err)
		}
	}
}

// TestAdminDrainListeners posts Envoy's /drain_listeners to the admin
// port and checks its effect on the proxy's sockets: without graceful the
// selected listeners stop accepting at once; with graceful they keep
// accepting for the drain duration, their HTTP responses carrying
// "Connection: close", then stop; ?inboundonly leaves the outbound
// listener (15001) and the explicit proxy accepting. Established
// connections are served on, and readiness is not changed.
func TestAdminDrainListeners(t *testing.T) {
	const drain = 2 * time.Second
	for _, tc := range []struct {
		name, query string
		graceful    bool
		outbound    bool // 15001 and the explicit proxy stop too
	}{
		{"all at once", "", false, true},
		{"inbound only", "?inboundonly", false, false},
		{"graceful", "?graceful", true, true},
		{"inbound only graceful", "?inboundonly&graceful", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startAdminMesh(t, drain)
			sockets := map[string]bool{ // address → stops accepting
				m.ingress():  true,
				m.inbound():  true,
				m.outbound(): tc.outbound,
				m.proxy:      tc.outbound,
			}
			for addr := range sockets {
				if !accepts(addr) {
					t.Fatalf("%s does not accept before the drain", addr)
				}
			}
			in := dialKeepAlive(t, m.ingress())
			out := dialKeepAlive(t, m.proxy)
			outDuring := dialKeepAlive(t, m.proxy) // used during a graceful drain
			const reviews = "http://reviews.default.svc.cluster.local:9080/"
			if code, conn, body, err := in.do("/before", "client"); err != nil || code != 200 || conn != "" || body != "app GET client /before" {
				t.Fatalf("inbound before the drain: %d %q %q %v", code, conn, body, err)
			}
			if code, conn, body, err := out.do(reviews+"before", "reviews.default.svc.cluster.local:9080"); err != nil || code != 200 || conn != "" || !strings.HasPrefix(body, "reviews GET") {
				t.Fatalf("outbound before the drain: %d %q %q %v", code, conn, body, err)
			}

			start := time.Now()
			if code, body := m.post(t, "/drain_listeners"+tc.query); code != 200 {
				t.Fatalf("POST /drain_listeners%s: %d %q", tc.query, code, body)
			}
			if tc.graceful {
				// Drain period: everything still accepts; inbound
				// responses ask the client to go away.
				for addr := range sockets {
					if !accepts(addr) {
						t.Errorf("%s stopped accepting %v after a graceful drain began, before the drain duration %v", addr, time.Since(start), drain)
					}
				}
				if code, conn, body, err := in.do("/during", "client"); err != nil || code != 200 || conn != "close" || body != "app GET client /during" {
					t.Errorf("inbound during the drain, established connection: %d Connection %q %q %v; want 200, close", code, conn, body, err)
				}
				if !in.closed(2 * time.Second) {
					t.Error("inbound connection not closed after its Connection: close response")
				}
				fresh := dialKeepAlive(t, m.ingress())
				if code, conn, _, err := fresh.do("/new", "client"); err != nil || code != 200 || conn != "close" {
					t.Errorf("inbound during the drain, new connection: %d Connection %q %v; want 200, close", code, conn, err)
				}
				// The explicit proxy is drained like every listener
				// (Envoy's), but not by ?inboundonly.
				want := ""
				if tc.outbound {
					want = "close"
				}
				if code, conn, body, err := outDuring.do(reviews+"during", "reviews.default.svc.cluster.local:9080"); err != nil || code != 200 || conn != want || !strings.HasPrefix(body, "reviews GET") {
					t.Errorf("explicit proxy during the drain, established connection: %d Connection %q %q %v; want 200, Connection %q", code, conn, body, err, want)
				}
				if got := outDuring.closed(time.Second); got != tc.outbound {
					t.Errorf("explicit proxy connection closed after its response during the drain: %v, want %v", got, tc.outbound)
				}
				if tc.outbound {
					fresh := dialKeepAlive(t, m.proxy)
					if code, conn, _, err := fresh.do(reviews+"new", "reviews.default.svc.cluster.local:9080"); err != nil || code != 200 || conn != "close" {
						t.Errorf("explicit proxy during the drain, new connection: %d Connection %q %v; want 200, close", code, conn, err)
					}
				}
				framework.Eventually(t, drain+5*time.Second, func() error {
					for addr, stops := range sockets {
						if stops && accepts(addr) {
							return fmt.Errorf("%s still accepts %v after POST", addr, time.Since(start))
						}
					}
					return nil
				})
				if el := time.Since(start); el < drain {
					t.Errorf("listeners stopped after %v, before the drain duration %v", el, drain)
				}
			} else {
				// Established inbound connections go on, without being
				// asked to close.
				if code, conn, body, err := in.do("/after", "client"); err != nil || code != 200 || conn != "" || body != "app GET client /after" {
					t.Errorf("inbound after the drain, established connection: %d Connection %q %q %v; want 200 kept alive", code, conn, body, err)
				}
			}
			for addr, stops := range sockets {
				if got := accepts(addr); got == stops {
					t.Errorf("%s accepts: %v, want %v", addr, got, !stops)
				}
			}
			// The established outbound connection is served either way.
			if code, _, body, err := out.do(reviews+"after", "reviews.default.svc.cluster.local:9080"); err != nil || code != 200 || !strings.HasPrefix(body, "reviews GET") {
				t.Errorf("outbound after the drain, established connection: %d %q %v", code, body, err)
			}
			if code, body, err := get(&http.Client{Timeout: 2 * time.Second}, m.ready); err != nil || code != 200 {
				t.Errorf("readiness after /drain_listeners: %d %q %v; want 200 (unchanged)", code, body, err)
			}
			select {
			case <-m.exited:
				t.Errorf("Run returned after /drain_listeners: %v", m.runErr)
			default:
			}
		})
	}
}

// TestAdminQuitQuitQuit posts /quitquitquit to the admin port: the
// response is whole before the proxy stops, Run returns nil at once (the
// drain duration is a minute), whether the proxy is serving or already
// draining, and its sockets are closed.
func TestAdminQuitQuitQuit(t *testing.T) {
	for _, draining := range []bool{false, true} {
		t.Run(fmt.Sprintf("draining=%v", draining), func(t *testing.T) {
			m := startAdminMesh(t, time.Minute)
			hc := &http.Client{Timeout: 2 * time.Second}
			if draining {
				m.cancel()
				framework.Eventually(t, 5*time.Second, func() error {
					if code, body, err := get(hc, m.ready); err != nil || code != 503 || !strings.HasPrefix(body, "DRAINING") {
						return fmt.Errorf("readiness: %d %q %v", code, body, err)
					}
					return nil
				})
			}
			// The stop closes the admin connection, maybe before the
			// handler returns: the response must be whole on the wire
			// first, its length declared (not chunked, whose end would
			// come after the handler) and the connection not reused.
			resp, err := hc.Post(m.admin+"/quitquitquit", "", nil)
			if err != nil {
				t.Fatalf("POST /quitquitquit: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(body) != "OK\n" || resp.ContentLength != 3 || !resp.Close {
				t.Fatalf("POST /quitquitquit: %d %q %v, Content-Length %d, Connection: close %v; want 200 OK, 3, true",
					resp.StatusCode, body, err, resp.ContentLength, resp.Close)
			}
			start := time.Now()
			if err := m.waitExit(t, 5*time.Second); err != nil {
				t.Errorf("Run: %v, want nil", err)
			}
			t.Logf("Run returned %v after POST /quitquitquit", time.Since(start))
			for _, addr := range []string{strings.TrimPrefix(m.admin, "http://"), m.proxy, m.ingress(), m.inbound(), m.outbound()} {
				if accepts(addr) {
					t.Errorf("%s still accepts after /quitquitquit", addr)
				}
			}
		})
	}
}
