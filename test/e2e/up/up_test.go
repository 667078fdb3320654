package up

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/testing/samples"
	"github.com/trellismesh/trellis/internal/testing/trellisbin"
)

var (
	servedBy = regexp.MustCompile(`data-reviews-version="(reviews-v[123])"`)
	sendTo   = regexp.MustCompile(`send traffic to  http://([0-9.]+:[0-9]+)/productpage`)
	// dashboardURL is the summary's dashboard line.
	dashboardURL = regexp.MustCompile(`dashboard +(http://[0-9.]+:[0-9]+/dashboard/)`)
)

const (
	ratingsUnavailable = "Ratings service is currently unavailable"
	reviewsUnavailable = "Sorry, product reviews are currently unavailable"
)

// lockedBuffer collects up's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := trellisbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildTrellis builds bin/trellis into the tree, as `make build` does.
func buildTrellis(t *testing.T, root, tree string) string {
	t.Helper()
	bin := filepath.Join(tree, "bin", "trellis")
	if err := trellisbin.Build(bin); err != nil {
		t.Fatalf("needs the Go toolchain: %v", err)
	}
	return bin
}

// copyConfig copies examples/bookinfo/config into tree, moving the
// workloads to prefix (127.A.B.).
func copyConfig(t *testing.T, root, tree, prefix string) string {
	t.Helper()
	src := filepath.Join(root, "examples", "bookinfo", "config")
	dst := filepath.Join(tree, "examples", "bookinfo", "config")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in %s: %v", src, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "address: 127.0.0.", "address: "+prefix)
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// trellis runs a short CLI command of bin in tree and returns its output.
func trellis(t *testing.T, bin, tree string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = tree
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// apply runs `trellis apply -f` on one of Istio's Bookinfo networking
// samples.
func apply(t *testing.T, bin, tree, sample string) {
	t.Helper()
	out, err := trellis(t, bin, tree, "apply", "-f", samples.Path(t, "bookinfo/networking/"+sample))
	if err != nil {
		t.Fatalf("trellis apply -f %s: %v\n%s", sample, err, out)
	}
	t.Logf("apply %s:\n%s", sample, out)
}

type result struct {
	version string
	body    string
	elapsed time.Duration
}

func get(c *http.Client, ingress, user string) (result, error) {
	req, err := http.NewRequest("GET", "http://"+ingress+"/productpage", nil)
	if err != nil {
		return result{}, err
	}
	if user != "" {
		req.Header.Set("end-user", user)
	}
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	r := result{body: string(b), elapsed: time.Since(start)}
	if err != nil {
		return r, err
	}
	if res.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET /productpage: %s", res.Status)
	}
	if m := servedBy.FindStringSubmatch(r.body); m != nil {
		r.version = m[1]
	}
	return r, nil
}

// mix sends n requests with `workers` in parallel and counts versions.
func mix(c *http.Client, ingress, user string, n, workers int) (map[string]int, error) {
	var (
		mu   sync.Mutex
		got  = map[string]int{}
		errs []error
		wg   sync.WaitGroup
		next = make(chan struct{}, n)
	)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for range next {
				r, err := get(c, ingress, user)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					got[r.version]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return got, fmt.Errorf("%d of %d requests failed, first: %w", len(errs), n, errs[0])
	}
	return got, nil
}

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
		time.Sleep(100 * time.Millisecond)
	}
}

func onlyVersion(c *http.Client, ingress, user, want string, n int) error {
	got, err := mix(c, ingress, user, n, 4)
	if err != nil {
		return err
	}
	if got[want] != n {
		return fmt.Errorf("end-user %q: want %d× %s, got %v", user, n, want, got)
	}
	return nil
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; cut after ")".
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// TestQuickstart is the README: `bin/trellis up`, productpage, then
// "change the routing and watch it" with Istio's samples, then Ctrl-C.
func TestQuickstart(t *testing.T) {
	root := moduleRoot(t)
	tree := t.TempDir()
	bin := buildTrellis(t, root, tree)
	prefix := fmt.Sprintf("127.%d.%d.", 1+rand.IntN(250), 1+rand.IntN(250))
	dir := copyConfig(t, root, tree, prefix)
	state := filepath.Join(tree, "state")

	out := &lockedBuffer{}
	cmd := exec.Command(bin, "up",
		"--ingress", "127.0.0.1:0", "--xds-address", "127.0.0.1:0",
		"--monitoring-address", "127.0.0.1:0", "--ca-address", "127.0.0.1:0",
		"--state-dir", state, "--drain-duration", "300ms")
	cmd.Dir = tree
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("trellis up output:\n%s", out)
		}
	})

	var ingress string
	eventually(t, 90*time.Second, func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("trellis up exited before ready: %v\n%s", err, out)
		default:
		}
		if m := sendTo.FindStringSubmatch(out.String()); m != nil {
			ingress = m[1]
			return nil
		}
		return errors.New("no 'send traffic to' line yet")
	})
	for _, want := range []string{"reading " + dir, "workload certificates from the CA at 127.0.0.1:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer c.CloseIdleConnections()

	t.Run("identities", func(t *testing.T) {
		// Every sidecar got a certificate for its WorkloadEntry's
		// service account from the CA, with a minted bootstrap token.
		for _, w := range []string{"productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1"} {
			log := filepath.Join(state, "sidecar-"+w+".default.log")
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			app := strings.SplitN(w, "-", 2)[0]
			want := `msg="workload certificate obtained" component=identity identity=spiffe://cluster.local/ns/default/sa/bookinfo-` + app + " "
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", log, want)
			}
		}
		if _, err := os.Stat(filepath.Join(tree, ".trellis", "ca", "root-cert.pem")); err != nil {
			t.Errorf("CA root not kept in .trellis/ca: %v", err)
		}
	})

	t.Run("mutual TLS between sidecars", func(t *testing.T) {
		// No PeerAuthentication in the directory: Istio's default
		// (PERMISSIVE, auto mTLS). productpage's sidecar calls details'
		// sidecar, which owns details' WorkloadEntry address through the
		// Sidecar ingress listener up generated, over mutual TLS.
		eventually(t, 20*time.Second, func() error {
			if _, err := get(c, ingress, ""); err != nil {
				return err
			}
			return hasRequests(prefix+"11", `reporter="destination"`, `connection_security_policy="mutual_tls"`,
				`source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage"`, `response_code="200"`)
		})
		if m := dashboardURL.FindStringSubmatch(out.String()); m == nil {
			t.Errorf("output lacks the dashboard URL")
		} else if res, err := c.Get(m[1]); err != nil {
			t.Errorf("dashboard: %v", err)
		} else {
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("dashboard %s: %s", m[1], res.Status)
			}
		}
	})
	t.Run("default routing", func(t *testing.T) {
		// examples/bookinfo/config: jason → v2, others v1/v3.
		if err := onlyVersion(c, ingress, "jason", "reviews-v2", 10); err != nil {
			t.Fatal(err)
		}
		got, err := mix(c, ingress, "", 40, 4)
		if err != nil {
			t.Fatal(err)
		}
		if got["reviews-v2"] != 0 || got["reviews-v1"]+got["reviews-v3"] != 40 {
			t.Errorf("without end-user: %v, want v1 and v3 only", got)
		}
	})
	t.Run("virtual-service-all-v1", func(t *testing.T) {
		apply(t, bin, tree, "destination-rule-all.yaml")
		apply(t, bin, tree, "virtual-service-all-v1.yaml")
		eventually(t, 20*time.Second, func() error { return onlyVersion(c, ingress, "jason", "reviews-v1", 20) })
	})
	t.Run("virtual-service-reviews-50-v3", func(t *testing.T) {
		apply(t, bin, tree, "virtual-service-reviews-50-v3.yaml")
		eventually(t, 20*time.Second, func() error {
			got, err := mix(c, ingress, "", 20, 4)
			if err != nil {
				return err
			}
			if got["reviews-v3"] == 0 {
				return fmt.Errorf("no v3 yet: %v", got)
			}
			return nil
		})
		const n = 1000
		start := time.Now()
		got, err := mix(c, ingress, "", n, 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d requests in %v: %v", n, time.Since(start), got)
		if got["reviews-v1"]+got["reviews-v3"] != n {
			t.Fatalf("versions other than v1 and v3: %v", got)
		}
		if share := float64(got["reviews-v3"]) / n; share < 0.45 || share > 0.55 {
			t.Errorf("v3 share %.3f, want 0.50 ± 0.05 (%v)", share, got)
		}
	})
	t.Run("virtual-service-reviews-test-v2", func(t *testing.T) {
		apply(t, bin, tree, "virtual-service-reviews-test-v2.yaml")
		eventually(t, 20*time.Second, func() error { return onlyVersion(c, ingress, "jason", "reviews-v2", 10) })
		if err := onlyVersion(c, ingress, "", "reviews-v1", 20); err != nil {
			t.Error(err)
		}
		r, err := get(c, ingress, "jason")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(r.body, ratingsUnavailable) {
			t.Errorf("reviews-v2 could not reach ratings:\n%s", r.body)
		}
	})
	t.Run("virtual-service-ratings-test-delay", func(t *testing.T) {
		// Istio's task: 7s delay on ratings for jason; the services'
		// own timeouts (3s per call) fire first, so jason's page is slow
		// (at least one timeout) and shows reviews or ratings as
		// unavailable, while everyone else's is fast.
		apply(t, bin, tree, "virtual-service-ratings-test-delay.yaml")
		eventually(t, 20*time.Second, func() error {
			r, err := get(c, ingress, "jason")
			if err != nil {
				return err
			}
			if r.elapsed < 3*time.Second {
				return fmt.Errorf("jason's page took %v, want ≥ 3s (the ratings call's timeout)", r.elapsed)
			}
			if !strings.Contains(r.body, reviewsUnavailable) && !strings.Contains(r.body, ratingsUnavailable) {
				return errors.New("jason's page shows neither reviews nor ratings as unavailable")
			}
			t.Logf("jason's page with the delay fault: %v", r.elapsed)
			return nil
		})
		r, err := get(c, ingress, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.elapsed > 2*time.Second || strings.Contains(r.body, ratingsUnavailable) {
			t.Errorf("a request without end-user took %v or lacks ratings", r.elapsed)
		}
	})
	t.Run("virtual-service-ratings-test-abort", func(t *testing.T) {
		apply(t, bin, tree, "virtual-service-ratings-test-abort.yaml")
		eventually(t, 20*time.Second, func() error {
			r, err := get(c, ingress, "jason")
			if err != nil {
				return err
			}
			if r.version != "reviews-v2" || !strings.Contains(r.body, ratingsUnavailable) {
				return fmt.Errorf("jason: %s, ratings unavailable: %v", r.version, strings.Contains(r.body, ratingsUnavailable))
			}
			if r.elapsed > 2*time.Second {
				return fmt.Errorf("the abort took %v", r.elapsed)
			}
			return nil
		})
	})
	t.Run("delete the abort", func(t *testing.T) {
		out, err := trellis(t, bin, tree, "delete", "-f", samples.Path(t, "bookinfo/networking/virtual-service-ratings-test-abort.yaml"))
		if err != nil {
			t.Fatalf("trellis delete: %v\n%s", err, out)
		}
		if !strings.Contains(out, "VirtualService default/ratings deleted") {
			t.Errorf("delete output: %s", out)
		}
		eventually(t, 20*time.Second, func() error {
			r, err := get(c, ingress, "jason")
			if err != nil {
				return err
			}
			if strings.Contains(r.body, ratingsUnavailable) {
				return errors.New("ratings still unavailable for jason")
			}
			return nil
		})
	})
	c.CloseIdleConnections()

	// Ctrl-C.
	kids := children(cmd.Process.Pid)
	if len(kids) != 12 {
		t.Errorf("trellis up has %d child processes, want 12 (6 sidecars, 6 workloads)", len(kids))
	}
	stopped = true
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("trellis up after SIGINT: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("trellis up did not exit 30s after SIGINT")
	}
	for _, pid := range kids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after exit", pid)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still has processes", pid)
		}
	}
	addrs := []string{ingress}
	for i := 10; i <= 15; i++ {
		for _, p := range []int{9080, 15000, 15001, 15006, 15020, 15021, 15080} {
			addrs = append(addrs, fmt.Sprintf("%s%d:%d", prefix, i, p))
		}
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s not free after exit: %v", a, err)
			continue
		}
		ln.Close()
	}
	if _, err := os.Stat(filepath.Join(tree, ".trellis", "up.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run file .trellis/up.json left behind: %v", err)
	}
	// The state directory keeps the logs (as documented).
	if _, err := os.Stat(filepath.Join(state, "control-plane.log")); err != nil {
		t.Errorf("state directory lost its logs: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	last := ""
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if last != "stopping" {
		t.Errorf("output ends with %q, want stopping", last)
	}
}

// hasRequests is nil when the sidecar on ip reports an
// istio_requests_total series carrying every label given.
func hasRequests(ip string, labels ...string) error {
	c := http.Client{Timeout: 5 * time.Second}
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
