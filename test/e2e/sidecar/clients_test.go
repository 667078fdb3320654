//go:build linux

package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"fortio.org/fortio/fhttp"
	flog "fortio.org/log"
)

// ---- curl ----

// curlResult is one curl run: its exit code, the HTTP status it printed
// (%{http_code}) and the body.
type curlResult struct {
	Exit int
	Code int
	Body string
}

// curl runs curl(1) in the client namespace (as root: captured) against
// the reviews service at reviews-v1's address with Host the service; args
// go before the URL.
func (m *mesh) curl(t *testing.T, args ...string) curlResult {
	t.Helper()
	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(m.reviews["v1"].ns.Addr, reviewsPort))
	all := append([]string{"-sS", "--max-time", "5", "-H", fmt.Sprintf("Host: %s:%d", reviewsHost, reviewsPort), "-w", "\n%{http_code}"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := m.client.ns.Command(ctx, "curl", append(all, url)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res curlResult
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.Exit = exit.ExitCode()
	case err != nil:
		t.Fatalf("running curl: %v", err)
	}
	out := stdout.String()
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		t.Fatalf("curl %v: no status line in %q (exit %d, stderr %q)", args, out, res.Exit, stderr.String())
	}
	res.Body = out[:i]
	res.Code, err = strconv.Atoi(out[i+1:])
	if err != nil {
		t.Fatalf("curl %v: status %q: %v (stderr %q)", args, out[i+1:], err, stderr.String())
	}
	return res
}

// backendName is the name in a backend's JSON answer, or "".
func backendName(body string) string {
	var rep reply
	if json.Unmarshal([]byte(body), &rep) != nil {
		return ""
	}
	return rep.Name
}

// requireCurl fails the test unless curl is installed.
func requireCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("this test drives curl: install curl (apt-get install -y curl): %v", err)
	}
}

// testCurlHeaderRouting: Bookinfo's jason sample seen by curl: with
// end-user: jason every answer is v2's, without it v3's.
func testCurlHeaderRouting(t *testing.T, m *mesh) {
	requireCurl(t)
	m.applyVS(t, readSample(t, sampleJason))
	m.until(t, propagation, 20, "/", []string{jasonHeader, jasonValue}, only("reviews-v2"))
	m.until(t, propagation, 20, "/", nil, only("reviews-v3"))
	counts := map[string]int{}
	for i := range 20 {
		for _, hdr := range [][]string{{"-H", jasonHeader + ": " + jasonValue}, nil} {
			r := m.curl(t, hdr...)
			want := "reviews-v3"
			if hdr != nil {
				want = "reviews-v2"
			}
			if r.Exit != 0 || r.Code != http.StatusOK || backendName(r.Body) != want {
				t.Fatalf("curl %d %v: exit %d status %d body %q; want exit 0, 200 from %s", i, hdr, r.Exit, r.Code, trim(r.Body), want)
			}
			counts[fmt.Sprintf("%v→%s", hdr != nil, want)]++
		}
	}
	t.Logf("curl through both sidecars, %s: %v (jason header → v2, none → v3)", sampleJason, counts)
}

// testCurlFaultAbort: Bookinfo's abort sample (for reviews) seen by curl
// --fail: jason's requests are answered 500 by the client sidecar (curl
// exits 22), the others reach v1.
func testCurlFaultAbort(t *testing.T, m *mesh) {
	requireCurl(t)
	m.applyVS(t, forReviews(readSample(t, sampleAbort)))
	m.until(t, propagation, 20, "/", []string{jasonHeader, jasonValue}, func(r result) error {
		if r.Codes[http.StatusInternalServerError] != r.N {
			return fmt.Errorf("want all %d aborted with 500: %v", r.N, r)
		}
		return nil
	})
	before := m.backendRequests()
	for i := range 20 {
		r := m.curl(t, "--fail", "-H", jasonHeader+": "+jasonValue)
		if r.Exit != 22 || r.Code != http.StatusInternalServerError {
			t.Fatalf("curl --fail %d with end-user: jason: exit %d status %d; want exit 22 (HTTP error) and 500 from the fault", i, r.Exit, r.Code)
		}
	}
	if got := m.backendRequests() - before; got != 0 {
		t.Errorf("aborted requests reached the backends %d times: the fault must be injected by the client sidecar", got)
	}
	for i := range 20 {
		r := m.curl(t, "--fail")
		if r.Exit != 0 || r.Code != http.StatusOK || backendName(r.Body) != "reviews-v1" {
			t.Fatalf("curl --fail %d without end-user: exit %d status %d body %q; want exit 0 and 200 from reviews-v1", i, r.Exit, r.Code, trim(r.Body))
		}
	}
	t.Logf("curl through both sidecars, %s for reviews: 20 × exit 22/500 for jason, 20 × exit 0/200 from v1 for others", sampleAbort)
}

// ---- fortio ----

// fortioEnv, when set in the environment of this test binary, makes
// TestMain run one fortio load (a JSON fortioSpec) and print its
// fortioResult as JSON instead of running tests: that is how the load runs
// inside the client namespace (fortio dials with its own net.Dialer, so
// its sockets must be created by a process that lives there).
const fortioEnv = "TRELLIS_E2E_FORTIO_SPEC"

type fortioSpec struct {
	URL   string `json:"url"`
	Host  string `json:"host"`
	N     int64  `json:"n"`
	Conns int    `json:"conns"`
}

type fortioResult struct {
	Requests int64         `json:"requests"`
	Codes    map[int]int64 `json:"codes"`
	QPS      float64       `json:"qps"`
}

// runFortio runs spec with fortio's HTTP/1.1 client (keep-alive, one
// connection per thread, exactly N requests as fast as possible).
func runFortio(spec fortioSpec, out io.Writer) error {
	flog.SetLogLevel(flog.Error)
	o := fhttp.HTTPRunnerOptions{}
	o.URL = spec.URL
	o.Exactly = spec.N
	o.QPS = -1
	o.NumThreads = spec.Conns
	o.Out = io.Discard
	o.HTTPReqTimeOut = 5 * time.Second
	o.AllowInitialErrors = true
	if err := o.AddAndValidateExtraHeader("Host: " + spec.Host); err != nil {
		return err
	}
	res, err := fhttp.RunHTTPTest(&o)
	if err != nil {
		return fmt.Errorf("fortio load: %w", err)
	}
	return json.NewEncoder(out).Encode(fortioResult{Requests: res.DurationHistogram.Count, Codes: res.RetCodes, QPS: res.ActualQPS})
}

// fortio runs spec in the client namespace (this test binary re-executed
// there, see fortioEnv).
func (m *mesh) fortio(t *testing.T, spec fortioSpec) fortioResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := m.client.ns.Command(ctx, self)
	cmd.Env = append(os.Environ(), fortioEnv+"="+string(b))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fortio in netns %s: %v\nstdout: %s\nstderr: %s", m.client.ns.Name, err, stdout.String(), stderr.String())
	}
	var res fortioResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("fortio in netns %s: output %q: %v\nstderr: %s", m.client.ns.Name, stdout.String(), err, stderr.String())
	}
	return res
}

// vsWeighted20_30_50 splits reviews 20/30/50 over v1/v2/v3.
const vsWeighted20_30_50 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 20
    - destination:
        host: reviews
        subset: v2
      weight: 30
    - destination:
        host: reviews
        subset: v3
      weight: 50
`

// testFortioWeightedSplit: 2,000 requests from fortio's client over 8
// keep-alive connections, split 20/30/50 by the client sidecar; the shares
// are counted by the backends themselves.
func testFortioWeightedSplit(t *testing.T, m *mesh) {
	m.applyVS(t, vsWeighted20_30_50)
	m.until(t, propagation, 60, "/", nil, func(r result) error {
		if r.Codes[http.StatusOK] != r.N || r.Names["reviews-v1"] == 0 || r.Names["reviews-v2"] == 0 || r.Names["reviews-v3"] < r.N/4 {
			return fmt.Errorf("20/30/50 split not in force: %v", r)
		}
		return nil
	})
	const n = 2000
	before := map[string]int64{}
	for v, b := range m.backends {
		before[v] = b.requests.Load()
	}
	res := m.fortio(t, fortioSpec{
		URL:   fmt.Sprintf("http://%s/", netip.AddrPortFrom(m.reviews["v1"].ns.Addr, reviewsPort)),
		Host:  fmt.Sprintf("%s:%d", reviewsHost, reviewsPort),
		N:     n,
		Conns: 8,
	})
	got := map[string]int64{}
	var total int64
	for v, b := range m.backends {
		got[v] = b.requests.Load() - before[v]
		total += got[v]
	}
	t.Logf("fortio, %d requests, 8 connections, %.0f req/s: codes %v; backends received %v", n, res.QPS, res.Codes, got)
	if res.Requests != n || res.Codes[http.StatusOK] != n {
		t.Fatalf("fortio: %d requests, codes %v; want %d × 200", res.Requests, res.Codes, n)
	}
	if total != n {
		t.Errorf("backends received %d requests for %d sent", total, n)
	}
	for v, w := range map[string]float64{"v1": 0.20, "v2": 0.30, "v3": 0.50} {
		share := float64(got[v]) / n
		if share < w-tolerance || share > w+tolerance {
			t.Errorf("%s share %.3f, want %.2f ± %.2f: %v", v, share, w, tolerance, got)
		}
	}
}
