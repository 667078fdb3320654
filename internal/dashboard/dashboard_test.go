package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/server"
)

const reviewsID = "sidecar~127.0.0.12~reviews-v1.default~default.svc.cluster.local"

// fakeDebug serves testdata/config_dump.json for the reviews proxy, as
// the xDS server's debug handler would, and 404 for anyone else.
func fakeDebug(t *testing.T) http.Handler {
	b, err := os.ReadFile(filepath.Join("testdata", "config_dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/config_dump" || r.URL.Query().Get("proxyID") != reviewsID {
			http.Error(w, "config_dump: proxy "+r.URL.Query().Get("proxyID")+" is not connected", http.StatusNotFound)
			return
		}
		w.Write(b)
	})
}

func reviewsClient() server.ClientStatus {
	return server.ClientStatus{
		ProxyID: reviewsID, ConnectionID: "reviews-v1.default-1", Name: "reviews-v1.default", Type: "sidecar",
		Namespace: "default", Labels: map[string]string{"app": "reviews", "version": "v1"}, Version: "trellis/dev", Delta: true,
		ConnectedAt: time.Now().Add(-time.Minute),
		Types: []server.TypeStatus{
			{TypeURL: xds.ClusterType, SentVersion: "3", SentNonce: "n1", AckedVersion: "3", AckedNonce: "n1", Acked: true},
			{TypeURL: xds.ListenerType, SentVersion: "3", SentNonce: "n2", NACKed: true, LastNACK: `listener "x": <script>alert(1)</script>`},
		},
	}
}

func newTestDashboard(t *testing.T, clients func() []server.ClientStatus) *Dashboard {
	t.Helper()
	in, err := analysis.Load(context.Background(), analysis.LoadConfig{Dirs: []string{filepath.Join("testdata", "config")}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{
		Clients:  clients,
		Snapshot: func() *model.Snapshot { return in.Snapshot },
		Problems: func() []store.Problem { return in.Problems },
		Debug:    fakeDebug(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// get requests path from a local caller and returns the response.
func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Host = "127.0.0.1:15014"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result(), rec.Body.String()
}

// rows returns the text of each body row of the table with the given id,
// one string per cell, blanks collapsed.
func rows(t *testing.T, page, id string) [][]string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var table *html.Node
	var find func(n *html.Node)
	find = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "table" && attr(n, "id") == id {
			table = n
		}
		for c := n.FirstChild; c != nil && table == nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if table == nil {
		t.Fatalf("no table %q in the page:\n%s", id, page)
	}
	var out [][]string
	var walk func(n *html.Node, inBody bool)
	walk = func(n *html.Node, inBody bool) {
		if n.Type == html.ElementNode && n.Data == "tbody" {
			inBody = true
		}
		if inBody && n.Type == html.ElementNode && n.Data == "tr" {
			var cells []string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					cells = append(cells, strings.Join(strings.Fields(textOf(c)), " "))
				}
			}
			out = append(out, cells)
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inBody)
		}
	}
	walk(table, false)
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(textOf(c))
		b.WriteByte(' ')
	}
	return b.String()
}

func findRow(rs [][]string, prefix ...string) []string {
	for _, r := range rs {
		if len(r) >= len(prefix) && slices.Equal(r[:len(prefix)], prefix) {
			return r
		}
	}
	return nil
}

func TestConfigPage(t *testing.T) {
	d := newTestDashboard(t, func() []server.ClientStatus { return nil })
	res, body := get(t, d.Handler(), "/dashboard/config")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	objects := rows(t, body, "objects")
	vs := findRow(objects, "VirtualService", "default", "reviews")
	if vs == nil || !strings.Contains(vs[4], "Error [IST0101] spec.http[0].route[0].destination.host") || !strings.Contains(vs[4], "reviewz") {
		t.Errorf("VirtualService row = %q; want the IST0101 message about reviewz", vs)
	}
	if !strings.HasSuffix(vs[3], "mesh.yaml:3") {
		t.Errorf("VirtualService source = %q; want mesh.yaml:3", vs[3])
	}
	if se := findRow(objects, "ServiceEntry", "default", "reviews"); se == nil || se[4] != "✔" {
		t.Errorf("ServiceEntry row = %q; want it clean", se)
	}
	rejected := rows(t, body, "rejected")
	if len(rejected) != 1 || rejected[0][0] != "Error" || !strings.Contains(rejected[0][2], "DestinationRule default/broken") ||
		!strings.Contains(rejected[0][3], "spec.trafficPolicy.loadBalancer") {
		t.Errorf("not admitted = %q; want the invalid DestinationRule with its field", rejected)
	}
	if !strings.Contains(body, "2 errors") {
		t.Errorf("page does not count 2 errors:\n%s", body)
	}
}

func TestProxiesPage(t *testing.T) {
	d := newTestDashboard(t, func() []server.ClientStatus { return []server.ClientStatus{reviewsClient()} })
	_, body := get(t, d.Handler(), "/dashboard/proxies")
	r := findRow(rows(t, body, "proxies"), "reviews-v1.default "+reviewsID)
	if r == nil {
		t.Fatalf("no row for the reviews proxy:\n%s", body)
	}
	if want := `CDS SYNCED LDS NACKED LDS last NACK: listener "x": <script>alert(1)</script>`; r[5] != want {
		t.Errorf("sync cell = %q, want %q", r[5], want)
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("the NACK text reached the page unescaped")
	}
	if r[6] != "not sent" {
		t.Errorf("metrics cell = %q; want 'not sent' (no METRICS_ADDRESS)", r[6])
	}
	if !strings.Contains(body, `href="/dashboard/workload?proxy=sidecar~127.0.0.12~reviews-v1.default~default.svc.cluster.local"`) {
		t.Error("no link to the workload page")
	}
}

func TestWorkloadPage(t *testing.T) {
	d := newTestDashboard(t, func() []server.ClientStatus { return []server.ClientStatus{reviewsClient()} })
	_, body := get(t, d.Handler(), "/dashboard/workload?proxy=reviews-v1.default")
	routes := rows(t, body, "routes")
	if r := findRow(routes, "9080", "reviews.default.svc.cluster.local:9080"); r == nil || r[4] != "reviews.default" {
		t.Errorf("routes = %q; want the 9080 route from VirtualService reviews.default", routes)
	}
	if r := findRow(rows(t, body, "clusters"), "reviews.default.svc.cluster.local", "9080", "-", "outbound", "EDS"); r == nil {
		t.Errorf("clusters = %q; want the reviews outbound cluster", rows(t, body, "clusters"))
	}
	policies := rows(t, body, "policies")
	if len(policies) < 1 || !strings.HasPrefix(policies[0][1], "STRICT") || !strings.Contains(policies[0][1], "workload: default/reviews-strict") {
		t.Errorf("policies = %q; want STRICT from default/reviews-strict", policies)
	}

	_, body = get(t, d.Handler(), "/dashboard/workload?proxy=nobody")
	if !strings.Contains(body, `proxy &#34;nobody&#34; is not connected to this control plane`) {
		t.Errorf("unknown proxy: page does not say so:\n%s", body)
	}
}

// promServer serves the testdata exposition files in turn: the first
// request gets files[0], later ones files[1].
func promServer(t *testing.T, files ...string) *httptest.Server {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != metricsPath {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		f := files[min(n, len(files)-1)]
		n++
		mu.Unlock()
		http.ServeFile(w, r, filepath.Join("testdata", f))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGraphEndpoint(t *testing.T) {
	pp := promServer(t, "productpage-0.prom", "productpage-1.prom")
	rv := promServer(t, "reviews-0.prom", "reviews-1.prom")
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(strings.Repeat("# padding\n", 10000)))
	}))
	t.Cleanup(huge.Close)
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	clients := []server.ClientStatus{
		{ProxyID: "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local", Name: "productpage-v1.default", MetricsAddress: addr(pp)},
		{ProxyID: "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local", Name: "reviews-v2.default", MetricsAddress: addr(rv)},
		{ProxyID: "sidecar~127.0.0.1~huge.default~default.svc.cluster.local", Name: "huge.default", MetricsAddress: addr(huge)},
		{ProxyID: "sidecar~127.0.0.1~old.default~default.svc.cluster.local", Name: "old.default"},
	}
	d := newTestDashboard(t, func() []server.ClientStatus { return clients })
	d.scrape.maxBytes = 64 << 10
	clock := time.Unix(1_700_000_000, 0)
	d.scrape.now = func() time.Time { return clock }

	graph := func() Graph {
		t.Helper()
		res, body := get(t, d.Handler(), "/dashboard/api/graph")
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, type %q: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		var g Graph
		if err := json.Unmarshal([]byte(body), &g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := graph()
	if g.Measured || len(g.Edges) != 4 || g.NextPollMillis != 1050 {
		t.Errorf("first round: measured %v, %d edges, next poll %d ms; want false, 4 (the 404 series comes later), 1050", g.Measured, len(g.Edges), g.NextPollMillis)
	}
	errs := map[string]string{}
	for _, s := range g.Scrapes {
		errs[s.Name] = s.Error
	}
	if !strings.Contains(errs["huge.default"], "more than 65536 bytes") || !strings.Contains(errs["old.default"], "METRICS_ADDRESS") ||
		errs["productpage-v1.default"] != "" || errs["reviews-v2.default"] != "" {
		t.Errorf("scrape errors = %q", errs)
	}
	// Not due yet: the same round again, no scrape.
	clock = clock.Add(500 * time.Millisecond)
	if g := graph(); g.Measured {
		t.Error("a round ran before the warm-up")
	}
	clock = clock.Add(9500 * time.Millisecond)
	g = graph()
	e := g.Edges[1]
	if !g.Measured || e.Target != "default/reviews-v2" || e.RPS != 10 || e.ErrorRate != 0.2 || e.P99 == nil || *e.P99 != 90 || e.MTLS != MTLSMutual {
		t.Errorf("second round: measured %v, edge %+v; want reviews at 10 rps, 20%% errors, p99 90, mutual_tls", g.Measured, e)
	}
	if g.NextPollMillis != 5050 {
		t.Errorf("next poll = %d ms, want the interval (5050)", g.NextPollMillis)
	}
	// The proxies page shows the last scrape's outcome.
	_, body := get(t, d.Handler(), "/dashboard/proxies")
	if r := findRow(rows(t, body, "proxies"), "huge.default sidecar~127.0.0.1~huge.default~default.svc.cluster.local"); r == nil || !strings.Contains(r[6], "more than 65536 bytes") {
		t.Errorf("proxies page row for huge = %q; want the scrape error", r)
	}
}

func TestGraphPageAndStatic(t *testing.T) {
	d := newTestDashboard(t, func() []server.ClientStatus { return nil })
	res, body := get(t, d.Handler(), "/dashboard/")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `<svg id="graph"`) || !strings.Contains(body, `src="/dashboard/static/graph.js"`) {
		t.Errorf("graph page: status %d:\n%s", res.StatusCode, body)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for path, typ := range map[string]string{"/dashboard/static/graph.js": "javascript", "/dashboard/static/dashboard.css": "text/css"} {
		res, body := get(t, d.Handler(), path)
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), typ) || len(body) < 100 {
			t.Errorf("%s: status %d, type %q, %d bytes", path, res.StatusCode, res.Header.Get("Content-Type"), len(body))
		}
	}
	if res, _ := get(t, d.Handler(), "/dashboard/nope"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown page: status %d", res.StatusCode)
	}
}

func TestGuard(t *testing.T) {
	d := newTestDashboard(t, func() []server.ClientStatus { return nil })
	h := d.Handler()
	for _, tc := range []struct {
		name, remote, host string
		want               int
	}{
		{"local by IP", "127.0.0.1:1", "127.0.0.1:15014", http.StatusOK},
		{"local by name", "[::1]:1", "localhost:15014", http.StatusOK},
		{"remote caller", "192.0.2.7:1", "127.0.0.1:15014", http.StatusForbidden},
		{"rebinding name", "127.0.0.1:1", "attacker.example:15014", http.StatusMisdirectedRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/dashboard/", nil)
			req.RemoteAddr, req.Host = tc.remote, tc.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
}

func TestNewRequires(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Clients is required") {
		t.Errorf("New(Config{}) error = %v", err)
	}
}
