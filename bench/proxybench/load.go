package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

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
	Samples    bool // keep every latency for exact percentiles
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
