package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	flog "fortio.org/log"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
)

// loadSpec is one fortio run.
type loadSpec struct {
	URL        string
	QPS        float64 // < 0: as fast as possible (fortio's "max")
	Conns      int
	Duration   time.Duration
	Resolution float64 // histogram resolution, seconds
	Uniform    bool
	Samples    bool   // keep every latency for exact percentiles
	Host       string // Host header, if not the URL's
}

// LoadResult is what one fortio run measured.
type LoadResult struct {
	Requests  int64   `json:"requests"`
	Non200    int64   `json:"non200"` // errors, socket errors included
	ActualQPS float64 `json:"actualQPS"`
	// Fortio's histogram percentiles, ms.
	P50 float64 `json:"p50ms"`
	P90 float64 `json:"p90ms"`
	P99 float64 `json:"p99ms"`
	Avg float64 `json:"avgms"`
	// Percentiles of the recorded samples (nearest rank), ms; a cross-check
	// of the histogram's interpolation.
	ExactP50 float64 `json:"exactP50ms,omitempty"`
	ExactP90 float64 `json:"exactP90ms,omitempty"`
	ExactP99 float64 `json:"exactP99ms,omitempty"`
}

// runLoad runs fortio's HTTP/1.1 keep-alive client ("fast client", one
// connection per thread) against spec.URL.
func runLoad(ctx context.Context, spec loadSpec) (LoadResult, error) {
	o := fhttp.HTTPRunnerOptions{}
	o.URL = spec.URL
	o.QPS = spec.QPS
	o.NumThreads = spec.Conns
	o.Duration = spec.Duration
	o.Percentiles = []float64{50, 90, 99}
	o.RunnerOptions.Resolution = spec.Resolution
	o.Uniform = spec.Uniform
	o.Out = io.Discard
	o.HTTPReqTimeOut = 5 * time.Second
	if spec.Host != "" {
		if err := o.AddAndValidateExtraHeader("Host: " + spec.Host); err != nil {
			return LoadResult{}, err
		}
	}
	o.AllowInitialErrors = false
	aborter := periodic.NewAborter() // fortio clears o.Stop when the run ends
	o.Stop = aborter
	var rec *recorder
	if spec.Samples {
		rec = newRecorder(spec.Conns, spec.QPS, spec.Duration)
		o.AccessLogger = rec
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			aborter.Abort(false)
		case <-done:
		}
	}()
	res, err := fhttp.RunHTTPTest(&o)
	if ctx.Err() != nil {
		return LoadResult{}, errInterrupted
	}
	if err != nil {
		return LoadResult{}, err
	}
	h := res.DurationHistogram
	r := LoadResult{Requests: h.Count, ActualQPS: res.ActualQPS, Avg: h.Avg * 1000}
	for code, n := range res.RetCodes {
		if code != http.StatusOK {
			r.Non200 += n
		}
	}
	for _, p := range h.Percentiles {
		switch p.Percentile {
		case 50:
			r.P50 = p.Value * 1000
		case 90:
			r.P90 = p.Value * 1000
		case 99:
			r.P99 = p.Value * 1000
		}
	}
	if rec != nil {
		all := rec.all()
		r.ExactP50, r.ExactP90, r.ExactP99 = percentile(all, 50)*1000, percentile(all, 90)*1000, percentile(all, 99)*1000
	}
	if h.Count == 0 {
		return r, fmt.Errorf("no requests completed")
	}
	return r, nil
}

// recorder keeps every latency, per fortio thread (no locking on the hot path).
type recorder struct {
	threads [][]float64
}

func newRecorder(conns int, qps float64, d time.Duration) *recorder {
	per := 1024
	if qps > 0 {
		per = int(qps*d.Seconds())/conns + 64
	}
	r := &recorder{threads: make([][]float64, conns)}
	for i := range r.threads {
		r.threads[i] = make([]float64, 0, per)
	}
	return r
}

func (r *recorder) Start(ctx context.Context, _ periodic.ThreadID, _ int64, _ time.Time) context.Context {
	return ctx
}

func (r *recorder) Report(_ context.Context, t periodic.ThreadID, _ int64, _ time.Time, latency float64, _ bool, _ string) {
	if int(t) < len(r.threads) { // fortio lowers the thread count, never raises it
		r.threads[t] = append(r.threads[t], latency)
	}
}

func (r *recorder) Info() string { return "latency recorder" }

func (r *recorder) all() []float64 {
	var out []float64
	for _, t := range r.threads {
		out = append(out, t...)
	}
	slices.Sort(out)
	return out
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// runLoadIn runs spec from network namespace ns: in this process if ns is
// "", else in a re-executed copy of this binary (`ip netns exec ns proxybench
// _load SPEC`) that runs the same runLoad and prints its LoadResult as JSON.
// child is the CPU time the re-executed load used (it has exited when the
// harness reads its own CPU time, so /proc no longer shows it).
func runLoadIn(ctx context.Context, e *Env, ns string, spec loadSpec) (r LoadResult, child time.Duration, err error) {
	if ns == "" {
		r, err = runLoad(ctx, spec)
		return r, 0, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return r, 0, err
	}
	out, child, err := runInNetns(ctx, ns, e.Self, "_load", string(b))
	if err != nil {
		return r, child, err
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, child, fmt.Errorf("load in netns %s: bad output %q: %w", ns, out, err)
	}
	return r, child, nil
}

// checkChainIn is checkChain from network namespace ns ("" for this one).
func checkChainIn(ctx context.Context, e *Env, ns, url, host string, size int) error {
	if ns == "" {
		return checkChain(ctx, url, host, size)
	}
	_, _, err := runInNetns(ctx, ns, e.Self, "_check", url, host, fmt.Sprint(size))
	return err
}

// runInNetns runs `ip netns exec ns path args...` in its own process group
// (killed with it on ctx's end or the harness's death) and returns its
// stdout and CPU time.
func runInNetns(ctx context.Context, ns, path string, args ...string) ([]byte, time.Duration, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, path}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return nil, 0, errInterrupted
	}
	var cpu time.Duration
	if st := cmd.ProcessState; st != nil {
		cpu = st.UserTime() + st.SystemTime()
	}
	if err != nil {
		return stdout.Bytes(), cpu, fmt.Errorf("in netns %s: %s %s: %v: %s", ns, path, args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), cpu, nil
}

// loadMain is "proxybench _load SPEC": runLoad(SPEC as JSON), result as JSON
// on stdout. The harness runs it inside a client network namespace.
func loadMain(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: _load SPEC-JSON")
	}
	var spec loadSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return err
	}
	flog.SetLogLevelQuiet(flog.Error)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := runLoad(ctx, spec)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// checkMain is "proxybench _check URL HOST SIZE": checkChain from here.
func checkMain(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: _check URL HOST SIZE")
	}
	var size int
	if _, err := fmt.Sscan(args[2], &size); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return checkChain(ctx, args[0], args[1], size)
}
