package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trellismesh/trellis/examples/bookinfo/app"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/test/framework"
)

// chromiumPath is Debian's chromium package.
const chromiumPath = "/usr/bin/chromium"

// workload is one Bookinfo instance of examples/bookinfo/config/services.yaml.
type workload struct {
	name, app, version, sa string
	host                   int    // last byte of its loopback address in services.yaml
	args                   string // the app's role and flags
	outbound               bool   // calls other services through its sidecar
}

var bookinfo = []workload{
	{"productpage-v1", "productpage", "v1", "bookinfo-productpage", 10, "productpage", true},
	{"details-v1", "details", "v1", "bookinfo-details", 11, "details", false},
	{"reviews-v1", "reviews", "v1", "bookinfo-reviews", 12, "reviews --version v1", true},
	{"reviews-v2", "reviews", "v2", "bookinfo-reviews", 13, "reviews --version v2", true},
	{"reviews-v3", "reviews", "v3", "bookinfo-reviews", 14, "reviews --version v3", true},
	{"ratings-v1", "ratings", "v1", "bookinfo-ratings", 15, "ratings", false},
}

// artifactDir is where screenshots go: $TRELLIS_ARTIFACTS, else a
// directory under the system temp dir that outlives the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TRELLIS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "trellis-artifacts")
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBookinfo runs the Bookinfo example as `trellis up` would, in this
// process: the control plane on examples/bookinfo/config (addresses moved
// to a loopback range of this test), one real sidecar per workload on its
// own address with its explicit proxy and metrics port, and the real
// Bookinfo services calling each other through their sidecars. It returns
// the control plane and productpage's address.
func startBookinfo(t *testing.T) (*framework.ControlPlane, string) {
	t.Helper()
	pid := os.Getpid()
	prefix := fmt.Sprintf("127.%d.%d.", 100+pid%100, (pid/100)%250+1)
	src := filepath.Join("..", "..", "examples", "bookinfo", "config")
	dir := t.TempDir()
	// This harness runs the applications on the WorkloadEntry addresses
	// themselves, with no inbound sidecar hop (trellis up generates one),
	// so traffic between them stays plaintext.
	plaintext := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: DISABLE}}\n"
	if err := os.WriteFile(filepath.Join(dir, "peer-authentication.yaml"), []byte(plaintext), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"services.yaml"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "address: 127.0.0.", "address: "+prefix)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cp := framework.StartControlPlane(t, dir)
	framework.Eventually(t, 20*time.Second, func() error {
		if snap := cp.Snapshot(); snap == nil || len(snap.Services()) < 4 {
			return errors.New("bookinfo services not in the snapshot yet")
		}
		return nil
	})
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	for _, w := range bookinfo {
		ip := fmt.Sprintf("%s%d", prefix, w.host)
		node, err := sidecar.NodeConfig{IP: ip, PodName: w.name, Namespace: "default", ServiceAccount: w.sa, WorkloadName: w.name,
			Labels: map[string]string{"app": w.app, "version": w.version}, MetricsAddress: ip + ":15020"}.Node()
		if err != nil {
			t.Fatal(err)
		}
		sc, err := sidecar.New(sidecar.Config{
			XDSAddress: cp.XDSAddr().String(), Node: node,
			AdminAddress: ip + ":15000", HealthAddress: "-", MetricsAddress: ip + ":15020",
			BindAddress: ip, ExplicitProxyAddress: ip + ":15080", DrainDuration: 10 * time.Millisecond, Logger: quiet,
		})
		if err != nil {
			t.Fatalf("sidecar %s: %v", w.name, err)
		}
		wg.Go(func() {
			if err := sc.Run(ctx); err != nil {
				t.Errorf("sidecar %s: %v", w.name, err)
			}
		})
		framework.Eventually(t, 20*time.Second, func() error {
			if !sc.Ready() {
				return fmt.Errorf("sidecar %s not ready: %+v", w.name, sc.Status())
			}
			return nil
		})
		args := append(strings.Fields(w.args), "--listen", ip+":9080")
		if w.outbound {
			args = append(args, "--outbound", ip+":15080")
		}
		cfg, err := app.ParseArgs(args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatalf("bookinfo %s: %v", w.name, err)
		}
		svc, err := app.New(cfg, quiet)
		if err != nil {
			t.Fatalf("bookinfo %s: %v", w.name, err)
		}
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			t.Fatalf("bookinfo %s: %v", w.name, err)
		}
		hs := &http.Server{Handler: svc, ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { hs.Serve(ln) })
		wg.Go(func() {
			<-ctx.Done()
			hs.Close()
			svc.Close()
		})
	}
	return cp, prefix + "10:9080"
}

// sendTraffic requests productpage every 20ms until ctx ends or 3,000
// requests were sent; it returns how many answered 200.
func sendTraffic(ctx context.Context, page string) (ok func() int) {
	var mu sync.Mutex
	n := 0
	go func() {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
		for i := 0; i < 3000 && ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+page+"/productpage", nil)
			if res, err := c.Do(req); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// browser starts headless Chromium (Debian's package) through chromedp.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the dashboard's browser test needs headless Chromium at %s: apt-get install chromium (%v)", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, so that a missing library fails here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// do runs chromedp actions with a deadline.
func do(t *testing.T, ctx context.Context, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// get runs one chromedp action with a deadline and returns its value.
func get[T any](t *testing.T, ctx context.Context, d time.Duration, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// text is the text of the element with the given id.
func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return get(t, ctx, 20*time.Second, chromedp.Text(chromedp.ID(id)))
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, 20*time.Second, chromedp.FullScreenshot(100))
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

type drawnEdge struct {
	Source string  `json:"source"`
	Target string  `json:"target"`
	RPS    float64 `json:"rps"`
}

// TestBrowserBookinfoGraph loads the dashboard the control plane serves in
// headless Chromium while traffic flows through Bookinfo, and checks that
// the SVG the page's script draws has Bookinfo's edges with non-zero
// rates; then the proxies and workload pages. Screenshots are saved.
func TestBrowserBookinfoGraph(t *testing.T) {
	ctx := browser(t)
	cp, page := startBookinfo(t)
	tctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := sendTraffic(tctx, page)
	framework.Eventually(t, 20*time.Second, func() error {
		if served() == 0 {
			return errors.New("productpage has not answered 200 yet")
		}
		return nil
	})
	base := "http://" + cp.MonitoringAddr().String() + "/dashboard/"

	do(t, ctx, 20*time.Second, chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("graph")))
	want := [][2]string{
		{"default/productpage-v1", "default/details-v1"},
		{"default/productpage-v1", "default/reviews-v1"},
		{"default/productpage-v1", "default/reviews-v2"},
		{"default/productpage-v1", "default/reviews-v3"},
		{"default/reviews-v2", "default/ratings-v1"},
		{"default/reviews-v3", "default/ratings-v1"},
	}
	var drawn []drawnEdge
	deadline := time.Now().Add(45 * time.Second)
	for {
		js := get(t, ctx, 10*time.Second, chromedp.Evaluate[string](`JSON.stringify(Array.from(document.querySelectorAll("#graph g.edge")).map(e => ({source: e.dataset.source, target: e.dataset.target, rps: +e.dataset.rps})))`))
		drawn = nil
		if err := json.Unmarshal([]byte(js), &drawn); err != nil {
			t.Fatalf("edges from the page %q: %v", js, err)
		}
		missing := slices.DeleteFunc(slices.Clone(want), func(w [2]string) bool {
			return slices.ContainsFunc(drawn, func(e drawnEdge) bool { return e.Source == w[0] && e.Target == w[1] && e.RPS > 0 })
		})
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
			screenshot(t, ctx, "graph-failed.png")
			t.Fatalf("after 45s the graph lacks %v with a rate > 0; drawn: %+v; page status: %q", missing, drawn, status)
		}
		time.Sleep(250 * time.Millisecond) // the page redraws on its own
	}
	for _, e := range drawn {
		if strings.HasPrefix(e.Target, "service:") {
			t.Errorf("edge %+v: a destination without a workload in a healthy Bookinfo", e)
		}
	}
	t.Logf("edges drawn: %+v (productpage answered 200 %d times)", drawn, served())
	status := text(t, ctx, "status")
	if strings.Contains(status, "failed") {
		t.Errorf("page status %q: a scrape failed", status)
	}
	screenshot(t, ctx, "graph.png")

	// Proxies: the six sidecars, every type synced, metrics scraped.
	do(t, ctx, 20*time.Second, chromedp.Navigate(base+"proxies"))
	proxies := text(t, ctx, "proxies")
	for _, w := range bookinfo {
		if !strings.Contains(proxies, w.name+".default") {
			t.Errorf("proxies page lacks %s:\n%s", w.name, proxies)
		}
	}
	if strings.Count(proxies, "scraped") != len(bookinfo) || strings.Contains(proxies, "NACKED") || strings.Contains(proxies, "STALE") {
		t.Errorf("proxies page: want %d scraped proxies, none NACKED or STALE:\n%s", len(bookinfo), proxies)
	}
	screenshot(t, ctx, "proxies.png")

	// productpage's effective routes: the pages link there.
	do(t, ctx, 20*time.Second,
		chromedp.Click(chromedp.CSS(`a[href*="productpage-v1.default"]`)),
		chromedp.WaitVisible(chromedp.ID("routes")))
	routes := text(t, ctx, "routes")
	for _, host := range []string{"details.default.svc.cluster.local", "reviews.default.svc.cluster.local", "ratings.default.svc.cluster.local"} {
		if !strings.Contains(routes, host) {
			t.Errorf("productpage's routes lack %s:\n%s", host, routes)
		}
	}
	policies := text(t, ctx, "policies")
	if !strings.Contains(policies, "DISABLE") || !strings.Contains(policies, "namespace: default/default") {
		t.Errorf("policies = %q; want DISABLE from PeerAuthentication default/default", policies)
	}
	screenshot(t, ctx, "workload.png")

	do(t, ctx, 20*time.Second, chromedp.Navigate(base+"config"))
	objects := text(t, ctx, "objects")
	if !strings.Contains(objects, "WorkloadEntry") || !strings.Contains(objects, "ratings-v1") {
		t.Errorf("configuration page lacks Bookinfo's objects:\n%s", objects)
	}
	screenshot(t, ctx, "config.png")
}
