package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/testing/samples"
	"github.com/trellismesh/trellis/internal/testing/trellisbin"
)

// syncBuffer collects the progress output of a Run.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bookinfoDir copies examples/bookinfo/config into a temporary directory,
// moving the workloads from 127.0.0.x to 127.A.B.x with random A and B so
// that the test does not collide with a running demo or another test.
// It returns the directory and the workloads' address prefix.
func bookinfoDir(t *testing.T) (dir, prefix string) {
	t.Helper()
	root, err := trellisbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples", "bookinfo", "config")
	files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in %s: %v", src, err)
	}
	prefix = fmt.Sprintf("127.%d.%d.", 1+rand.IntN(250), 1+rand.IntN(250))
	dir = t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "address: 127.0.0.", "address: "+prefix)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, prefix
}

// testConfig is a Config on free loopback ports.
func testConfig(t *testing.T, dir string, out io.Writer) Config {
	return Config{
		Dir:               dir,
		Executable:        binary(t),
		XDSAddress:        "127.0.0.1:0",
		MonitoringAddress: "127.0.0.1:0",
		CAAddress:         "127.0.0.1:0",
		IngressAddress:    "127.0.0.1:0",
		StateDir:          filepath.Join(t.TempDir(), "state"),
		DrainDuration:     200 * time.Millisecond,
		ReadyTimeout:      30 * time.Second,
		Out:               out,
	}
}

// running is an Up running in the background.
type runningUp struct {
	*Up
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned err
	err    error
	out    *syncBuffer
}

// stop cancels Run and returns its result.
func (r *runningUp) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return 30s after cancel; output:\n%s", r.out)
		return nil
	}
}

// startUp runs cfg until ready; the test's cleanup stops it.
func startUp(t *testing.T, cfg Config) *runningUp {
	t.Helper()
	out := &syncBuffer{}
	cfg.Out = out
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningUp{Up: u, cancel: cancel, done: make(chan struct{}), out: out}
	go func() {
		r.err = u.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		t.Logf("trellis up output:\n%s", out)
	})
	select {
	case <-u.Ready():
	case <-r.done:
		t.Fatalf("Run returned before ready: %v\noutput:\n%s", r.err, out)
	case <-time.After(90 * time.Second):
		t.Fatalf("not ready after 90s; output:\n%s", out)
	}
	return r
}

var servedBy = regexp.MustCompile(`data-reviews-version="(reviews-v[123])"`)

// page GETs /productpage through the front door and returns the reviews
// version that served it.
func page(c *http.Client, ingress string, user string) (string, string, error) {
	req, err := http.NewRequest("GET", "http://"+ingress+"/productpage", nil)
	if err != nil {
		return "", "", err
	}
	if user != "" {
		req.Header.Set("end-user", user)
	}
	res, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", string(b), fmt.Errorf("GET /productpage: %s", res.Status)
	}
	m := servedBy.FindSubmatch(b)
	if m == nil {
		return "", string(b), errors.New("page names no reviews version")
	}
	return string(m[1]), string(b), nil
}

// eventually polls cond until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not met after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// versions fetches the page n times and counts the reviews versions.
func versions(c *http.Client, ingress, user string, n int) (map[string]int, error) {
	got := map[string]int{}
	for range n {
		v, _, err := page(c, ingress, user)
		if err != nil {
			return got, err
		}
		got[v]++
	}
	return got, nil
}

// only is nil when every request of got was served by want.
func only(got map[string]int, want string, n int) error {
	if got[want] != n {
		return fmt.Errorf("want %d× %s, got %v", n, want, got)
	}
	return nil
}

// writeSample writes one of Istio's Bookinfo networking samples into dir
// under name, atomically (as an editor does).
func writeSample(t *testing.T, dir, name, sample string) {
	t.Helper()
	b, err := os.ReadFile(samples.Path(t, "bookinfo/networking/"+sample))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// gone fails unless every PID and its process group have exited.
func gone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after stop (kill 0: %v)", pid, err)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still has processes after stop (kill 0: %v)", pid, err)
		}
	}
}

// TestBookinfo runs up on the Bookinfo example with the real binary,
// drives requests through the front door, applies Istio's routing
// samples by writing them into the directory, and stops.
func TestBookinfo(t *testing.T) {
	dir, prefix := bookinfoDir(t)
	r := startUp(t, testConfig(t, dir, nil))
	ingress := r.IngressAddr()
	if ingress == "" {
		t.Fatal("no front door address")
	}
	out := r.out.String()
	for _, want := range []string{
		"sidecar reviews-v2.default           ready",
		"workload productpage-v1.default      ready",
		"send traffic to  http://" + ingress + "/productpage",
		prefix + "13:9080",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output lacks %q:\n%s", want, out)
		}
	}
	if m := dashboardLine.FindStringSubmatch(out); m == nil {
		t.Errorf("progress output lacks the dashboard URL:\n%s", out)
	} else if err := httpOK(m[1]); err != nil {
		t.Errorf("dashboard: %v", err)
	}
	pids := r.PIDs()
	if len(pids) != 12 {
		t.Errorf("started %d processes, want 12 (6 sidecars, 6 workloads)", len(pids))
	}
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()

	t.Run("productpage", func(t *testing.T) {
		v, body, err := page(c, ingress, "")
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if !strings.Contains(body, "ISBN-10") || strings.Contains(body, "Sorry") {
			t.Errorf("page served by %s lacks the details or says Sorry:\n%s", v, body)
		}
	})
	t.Run("default routing: jason v2, others v1 or v3", func(t *testing.T) {
		got, err := versions(c, ingress, "jason", 5)
		if err != nil {
			t.Fatal(err)
		}
		if err := only(got, "reviews-v2", 5); err != nil {
			t.Error(err)
		}
		if got, err = versions(c, ingress, "", 20); err != nil {
			t.Fatal(err)
		}
		if got["reviews-v2"] != 0 || got["reviews-v1"]+got["reviews-v3"] != 20 {
			t.Errorf("without end-user: %v, want v1 and v3 only", got)
		}
	})
	t.Run("mutual TLS between sidecars", func(t *testing.T) {
		// productpage's calls to details end at details' sidecar (its
		// Sidecar ingress listener on the WorkloadEntry address), over
		// mTLS with productpage's identity; the front door's plaintext
		// reaches productpage's sidecar as such.
		eventually(t, 10*time.Second, func() error {
			if _, _, err := page(c, ingress, ""); err != nil {
				return err
			}
			if err := hasRequests(prefix+"11", `reporter="destination"`, `connection_security_policy="mutual_tls"`,
				`source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage"`,
				`destination_principal="spiffe://cluster.local/ns/default/sa/bookinfo-details"`, `response_code="200"`); err != nil {
				return err
			}
			return hasRequests(prefix+"10", `reporter="destination"`, `connection_security_policy="none"`, `response_code="200"`)
		})
	})
	t.Run("virtual-service-all-v1", func(t *testing.T) {
		// The samples name subsets of every service: Istio's docs apply
		// destination-rule-all.yaml first.
		writeSample(t, dir, "destination-rules.yaml", "destination-rule-all.yaml")
		writeSample(t, dir, "virtual-service-reviews.yaml", "virtual-service-all-v1.yaml")
		eventually(t, 20*time.Second, func() error {
			got, err := versions(c, ingress, "jason", 20)
			if err != nil {
				return err
			}
			return only(got, "reviews-v1", 20)
		})
	})
	t.Run("virtual-service-reviews-test-v2", func(t *testing.T) {
		writeSample(t, dir, "virtual-service-reviews.yaml", "virtual-service-reviews-test-v2.yaml")
		eventually(t, 20*time.Second, func() error {
			got, err := versions(c, ingress, "jason", 10)
			if err != nil {
				return err
			}
			return only(got, "reviews-v2", 10)
		})
		got, err := versions(c, ingress, "", 20)
		if err != nil {
			t.Fatal(err)
		}
		if err := only(got, "reviews-v1", 20); err != nil {
			t.Errorf("not jason: %v", err)
		}
		_, body, err := page(c, ingress, "jason")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(body, "Ratings service is currently unavailable") {
			t.Errorf("reviews-v2 could not reach ratings through its sidecar:\n%s", body)
		}
	})
	t.Run("WorkloadEntry added and removed", func(t *testing.T) {
		addAndRemove(t, r, dir, prefix+"30", prefix+"30", c)
	})
	c.CloseIdleConnections()
	pids = r.PIDs()

	if err := r.stop(t); err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
	gone(t, pids)
	if !strings.HasSuffix(strings.TrimSpace(r.out.String()), "stopping") {
		t.Errorf("output does not end with stopping:\n%s", r.out)
	}
	if _, err := net.Dial("tcp", ingress); err == nil {
		t.Errorf("front door %s still accepts after stop", ingress)
	}
}

// dashboardLine is the summary's dashboard URL.
var dashboardLine = regexp.MustCompile(`dashboard +(http://[0-9.]+:[0-9]+/dashboard/)`)

// httpOK is nil when url answers 200.
func httpOK(url string) error {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return nil
}

// hasRequests is nil when the sidecar on ip reports an
// istio_requests_total series carrying every label given.
func hasRequests(ip string, labels ...string) error {
	// No keep-alive: with --netns the sidecar's namespace may be gone
	// before an idle connection would see its close.
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + ip + ":15020/stats/prometheus")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	var series []string
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "istio_requests_total{") {
			continue
		}
		series = append(series, line)
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("sidecar %s has no istio_requests_total with %v; it has:\n%s", ip, labels, strings.Join(series, "\n"))
}

// TestBookinfoNetns runs up --netns on the Bookinfo example: each
// workload in its own namespace with capture, the routing samples
// applied, mTLS between sidecars; after stop no process, namespace or
// link is left.
func TestBookinfoNetns(t *testing.T) {
	requireNetns(t)
	dir, _ := bookinfoDir(t)
	cfg := testConfig(t, dir, nil)
	cfg.Netns = true
	cfg.NetnsBridge = fmt.Sprintf("tup%d", rand.IntN(100000))
	cfg.NetnsSubnet = netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250)))
	rootRules := istioRules(t, "")
	r := startUp(t, cfg)
	if rules := istioRules(t, cfg.NetnsBridge+"-productpage-v1.default"); !strings.Contains(rules, "ISTIO_REDIRECT") {
		t.Errorf("no capture rules in productpage's namespace:\n%s", rules)
	}
	ingress := r.IngressAddr()
	if ingress == "" {
		t.Fatal("no front door address")
	}
	base := cfg.NetnsSubnet.Addr().As4()
	nsAddr := func(last byte) string { b := base; b[3] = last; return netip.AddrFrom4(b).String() }
	out := r.out.String()
	for _, want := range []string{"traffic capture of productpage-v1.default", "namespace " + cfg.NetnsBridge + "-details-v1.default"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output lacks %q:\n%s", want, out)
		}
	}
	if ns := netnsList(t, cfg.NetnsBridge); len(ns) != 6 {
		t.Errorf("namespaces %v, want 6", ns)
	}
	pids := r.PIDs()
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()

	t.Run("productpage", func(t *testing.T) {
		v, body, err := page(c, ingress, "")
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if !strings.Contains(body, "ISBN-10") || strings.Contains(body, "Sorry") {
			t.Errorf("page served by %s lacks the details or says Sorry:\n%s", v, body)
		}
	})
	t.Run("mutual TLS between sidecars", func(t *testing.T) {
		eventually(t, 10*time.Second, func() error {
			if _, _, err := page(c, ingress, ""); err != nil {
				return err
			}
			return hasRequests(nsAddr(11), `reporter="destination"`, `connection_security_policy="mutual_tls"`,
				`source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage"`, `response_code="200"`)
		})
	})
	t.Run("virtual-service-all-v1", func(t *testing.T) {
		writeSample(t, dir, "destination-rules.yaml", "destination-rule-all.yaml")
		writeSample(t, dir, "virtual-service-reviews.yaml", "virtual-service-all-v1.yaml")
		eventually(t, 20*time.Second, func() error {
			got, err := versions(c, ingress, "jason", 20)
			if err != nil {
				return err
			}
			return only(got, "reviews-v1", 20)
		})
	})
	t.Run("virtual-service-reviews-test-v2", func(t *testing.T) {
		writeSample(t, dir, "virtual-service-reviews.yaml", "virtual-service-reviews-test-v2.yaml")
		eventually(t, 20*time.Second, func() error {
			got, err := versions(c, ingress, "jason", 10)
			if err != nil {
				return err
			}
			return only(got, "reviews-v2", 10)
		})
	})
	t.Run("WorkloadEntry added and removed", func(t *testing.T) {
		addAndRemove(t, r, dir, "127.0.0.30", nsAddr(30), c)
		if ns := netnsList(t, cfg.NetnsBridge); len(ns) != 6 {
			t.Errorf("namespaces after removing details-v2: %v, want 6", ns)
		}
	})
	c.CloseIdleConnections()
	pids = r.PIDs()

	if err := r.stop(t); err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
	gone(t, pids)
	if ns := netnsList(t, cfg.NetnsBridge); len(ns) != 0 {
		t.Errorf("namespaces left after stop: %v", ns)
	}
	links, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v\n%s", err, links)
	}
	if strings.Contains(string(links), cfg.NetnsBridge) {
		t.Errorf("links left after stop:\n%s", links)
	}
	if after := istioRules(t, ""); after != rootRules {
		t.Errorf("the root namespace's ISTIO_ rules changed:\nbefore:\n%s\nafter:\n%s", rootRules, after)
	}
}

// istioRules returns the ISTIO_ lines of the nat table in namespace ns
// ("" for the test's own).
func istioRules(t *testing.T, ns string) string {
	t.Helper()
	argv := []string{"iptables-save", "-t", "nat"}
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "ISTIO_") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// requireNetns fails unless the test can create namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("TestBookinfoNetns needs root (network namespaces, a bridge and iptables)")
	}
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s in PATH (apt-get install iproute2 iptables): %v", tool, err)
		}
	}
}

// netnsList returns the namespaces whose names start with prefix.
func netnsList(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	var ns []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			ns = append(ns, f[0])
		}
	}
	return ns
}
