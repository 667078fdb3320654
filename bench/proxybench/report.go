package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is the whole benchmark, as written by -o json.
type Result struct {
	Config  Config            `json:"config"`
	Machine Machine           `json:"machine"`
	Pairs   []string          `json:"pairs"`
	Skipped map[string]string `json:"skipped,omitempty"`
	Runs    []*PairRun        `json:"runs"`
	Medians []*Summary        `json:"medians"`
}

type Config struct {
	Rounds     int     `json:"rounds"`
	Duration   string  `json:"duration"`
	Warmup     string  `json:"warmup"`
	Saturation string  `json:"saturation"`
	QPS        float64 `json:"qps"`
	Conns      int     `json:"connections"`
	Size       int     `json:"responseBytes"`
	Resolution float64 `json:"histogramResolutionSeconds"`
	Uniform    bool    `json:"uniform"`
	Rotate     bool    `json:"rotate"` // the pairs' order rotated from round to round
	Services   int     `json:"services"`
	SidecarEnv string  `json:"sidecarEnv,omitempty"`
}

func configOf(o options) Config {
	return Config{Rounds: o.rounds, Duration: o.duration.String(), Warmup: o.warmup.String(),
		Saturation: o.saturation.String(), QPS: o.qps, Conns: o.conns, Size: o.size,
		Resolution: o.resolution, Uniform: o.uniform, Rotate: o.rotate, Services: o.services, SidecarEnv: o.sidecarEnv}
}

type Machine struct {
	CPUs           int    `json:"cpus"`
	CPUModel       string `json:"cpuModel,omitempty"`
	Kernel         string `json:"kernel,omitempty"`
	Go             string `json:"go"`
	Nginx          string `json:"nginx,omitempty"`
	LoadAvgAtStart string `json:"loadAvgAtStart,omitempty"`
	// Wake is the thread wake-up round trip at the start (nil: not
	// measured, as in results saved before it existed).
	Wake *WakeProbe `json:"wake,omitempty"`
}

// PairRun is one pair in one round.
type PairRun struct {
	Pair  string     `json:"pair"`
	Round int        `json:"round"`
	Load  LoadResult `json:"load"` // at the target rate
	// Added latency, ms: this run's percentile minus the direct run's of the
	// same round (nil for direct itself, or without a direct run).
	AddedP50 *float64 `json:"addedP50ms,omitempty"`
	AddedP90 *float64 `json:"addedP90ms,omitempty"`
	AddedP99 *float64 `json:"addedP99ms,omitempty"`
	// The same from the exact sample percentiles.
	AddedExactP50 *float64      `json:"addedExactP50ms,omitempty"`
	AddedExactP90 *float64      `json:"addedExactP90ms,omitempty"`
	AddedExactP99 *float64      `json:"addedExactP99ms,omitempty"`
	Saturation    *LoadResult   `json:"saturation,omitempty"`
	Proxies       []*ProxyStats `json:"proxies,omitempty"`
	// Means over the pair's proxies (per proxy figures).
	VCPUPer1kRPS       float64 `json:"vcpuPer1kRpsPerProxy,omitempty"`
	SatCPUusPerRequest float64 `json:"satCpuUsPerRequestPerProxy,omitempty"`
	RSSMB              float64 `json:"rssMBPerProxy,omitempty"`
	AnonMB             float64 `json:"anonMBPerProxy,omitempty"`
	// vCPU (average) used outside the benchmark during the measured run, and
	// by interrupts (softirq: loopback receive processing, charged to no
	// process on this kernel).
	OtherVCPU float64 `json:"otherVcpu"`
	IRQVCPU   float64 `json:"irqVcpu"`
	Warning   string  `json:"warning,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// ProxyStats is one proxy process (with its descendants) in one run.
type ProxyStats struct {
	Name               string  `json:"name"`
	PID                int     `json:"pid"`
	CPUSeconds         float64 `json:"cpuSeconds"`         // during the measured run
	VCPUPer1kRPS       float64 `json:"vcpuPer1kRps"`       // = CPU seconds per 1,000 requests
	SatCPUSeconds      float64 `json:"satCpuSeconds"`      // during the saturation run
	SatCPUusPerRequest float64 `json:"satCpuUsPerRequest"` // µs
	RSSMB              float64 `json:"rssMB"`              // VmRSS at the end of the measured run
	AnonMB             float64 `json:"anonMB"`             // RssAnon then: private memory, no executable pages
	PeakRSSMB          float64 `json:"peakRssMB"`          // VmHWM at the end (after saturation)
}

func (r *PairRun) aggregate() {
	if len(r.Proxies) == 0 {
		return
	}
	n := float64(len(r.Proxies))
	for _, p := range r.Proxies {
		r.VCPUPer1kRPS += p.VCPUPer1kRPS / n
		r.SatCPUusPerRequest += p.SatCPUusPerRequest / n
		r.RSSMB += p.RSSMB / n
		r.AnonMB += p.AnonMB / n
	}
}

func (r *PairRun) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "others %.2f vCPU; %.0f rps, p50/p90/p99 %.3f/%.3f/%.3f ms", r.OtherVCPU, r.Load.ActualQPS, r.Load.P50, r.Load.P90, r.Load.P99)
	if len(r.Proxies) > 0 {
		fmt.Fprintf(&b, ", vCPU/1k rps %s", perProxy(r.Proxies, func(p *ProxyStats) float64 { return p.VCPUPer1kRPS }, "%.3f"))
	}
	if r.Saturation != nil {
		fmt.Fprintf(&b, ", saturation %.0f rps", r.Saturation.ActualQPS)
		if len(r.Proxies) > 0 {
			fmt.Fprintf(&b, " %s µs/req", perProxy(r.Proxies, func(p *ProxyStats) float64 { return p.SatCPUusPerRequest }, "%.1f"))
		}
	}
	if len(r.Proxies) > 0 {
		fmt.Fprintf(&b, ", RSS %s MB", perProxy(r.Proxies, func(p *ProxyStats) float64 { return p.RSSMB }, "%.1f"))
	}
	return b.String()
}

func perProxy(ps []*ProxyStats, f func(*ProxyStats) float64, format string) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf(format, f(p)))
	}
	return strings.Join(parts, "/")
}

// addedLatency fills in the added latency of every run of one round against
// that round's run of the pair's baseline (direct, or direct-netns for the
// pairs in network namespaces).
func addedLatency(round []*PairRun) {
	refs := map[string]*PairRun{}
	for _, r := range round {
		if baselineOf(r.Pair) == "" && r.Error == "" {
			refs[r.Pair] = r
		}
	}
	diff := func(a, b float64) *float64 { d := a - b; return &d }
	for _, r := range round {
		direct := refs[baselineOf(r.Pair)]
		if direct == nil || r == direct || r.Error != "" {
			continue
		}
		r.AddedP50 = diff(r.Load.P50, direct.Load.P50)
		r.AddedP90 = diff(r.Load.P90, direct.Load.P90)
		r.AddedP99 = diff(r.Load.P99, direct.Load.P99)
		r.AddedExactP50 = diff(r.Load.ExactP50, direct.Load.ExactP50)
		r.AddedExactP90 = diff(r.Load.ExactP90, direct.Load.ExactP90)
		r.AddedExactP99 = diff(r.Load.ExactP99, direct.Load.ExactP99)
	}
}

// Summary is the median over the rounds of each figure of one pair.
type Summary struct {
	Pair               string   `json:"pair"`
	Baseline           string   `json:"baseline,omitempty"` // the reference of the added latency
	Rounds             int      `json:"rounds"`             // successful rounds
	P50                float64  `json:"p50ms"`
	P90                float64  `json:"p90ms"`
	P99                float64  `json:"p99ms"`
	AddedP50           *float64 `json:"addedP50ms,omitempty"`
	AddedP90           *float64 `json:"addedP90ms,omitempty"`
	AddedP99           *float64 `json:"addedP99ms,omitempty"`
	AddedExactP50      *float64 `json:"addedExactP50ms,omitempty"`
	AddedExactP90      *float64 `json:"addedExactP90ms,omitempty"`
	AddedExactP99      *float64 `json:"addedExactP99ms,omitempty"`
	VCPUPer1kRPS       *float64 `json:"vcpuPer1kRpsPerProxy,omitempty"`
	SatCPUusPerRequest *float64 `json:"satCpuUsPerRequestPerProxy,omitempty"`
	SatQPS             *float64 `json:"saturationQPS,omitempty"`
	RSSMB              *float64 `json:"rssMBPerProxy,omitempty"`
	AnonMB             *float64 `json:"anonMBPerProxy,omitempty"`
	// Ratios of these medians to nginx's (pairs with proxies other than
	// nginx): to the nginx pair on the same path (VsPair: nginx-netns for the
	// netns pairs when it ran, else nginx).
	VsNginx map[string]float64 `json:"vsNginx,omitempty"`
	VsPair  string             `json:"vsPair,omitempty"`
	// VsNginxPerRound is the median over rounds of the same ratios taken
	// within each round (this pair's run against VsPair's run of the same
	// round): noise that reaches one pair's runs and not the other's moves
	// it less than it moves the ratio of the medians.
	VsNginxPerRound map[string]float64 `json:"vsNginxPerRound,omitempty"`
	// QuietRounds are the rounds that pass the quiet-round rule (see
	// quietRounds) for this pair's baseline and VsPair, and VsNginxQuiet the
	// per-round ratios over those rounds only.
	QuietRounds  []int              `json:"quietRounds,omitempty"`
	VsNginxQuiet map[string]float64 `json:"vsNginxQuiet,omitempty"`
	// VsCapturePerRound are the per-round ratios to nginx-netns-capture
	// when it ran (netns pairs): nginx behind the same kind of capture as
	// the sidecars, so like for like, where VsPair's nginx-netns pays no
	// capture at all.
	VsCapturePerRound map[string]float64 `json:"vsNginxCapturePerRound,omitempty"`
	// DiffPerRound is the added latency over VsPair's within each round:
	// how large the gap is, and whether the run resolves it.
	DiffPerRound map[string]Diff `json:"diffVsNginxPerRound,omitempty"`
	// DiffToA is a "-b" pair's figures minus its A pair's (trellis-b −
	// trellis: two sidecar builds in the same rounds) within each round —
	// the added latencies, and CPU per 1,000 req/s per proxy — with
	// VsA the A pair; the way to tell whether a change moved anything.
	VsA     string          `json:"vsA,omitempty"`
	DiffToA map[string]Diff `json:"diffVsAPerRound,omitempty"`
}

// quietSlack is how far a quiet round's reference figures may be from the
// run's best: 10 %.
const quietSlack = 0.10

// quietRounds applies the quiet-round rule: a round is quiet when the
// baseline pair saturated within quietSlack of its best saturation in the
// run and the reference (nginx) pair used within quietSlack of its least CPU
// per request at saturation. Both figures move with what else the host
// runs (other guests take cycles, caches and memory bandwidth, often
// without showing as steal) and neither is what the sidecars are judged on,
// so picking rounds by them does not pick in the sidecars' favour. Noise
// that reaches only the sidecars' runs of a round passes the rule; the
// median over rounds is there for that. Nil when the run has no
// saturation figures for both references.
func quietRounds(runs []*PairRun, baseline, ref string) []int {
	sat := map[int]float64{}  // baseline's saturation, req/s
	cost := map[int]float64{} // ref's CPU per request at saturation, µs
	for _, r := range runs {
		if r.Error != "" {
			continue
		}
		switch r.Pair {
		case baseline:
			if r.Saturation != nil && r.Saturation.ActualQPS > 0 {
				sat[r.Round] = r.Saturation.ActualQPS
			}
		case ref:
			if r.SatCPUusPerRequest > 0 {
				cost[r.Round] = r.SatCPUusPerRequest
			}
		}
	}
	if len(sat) == 0 || len(cost) == 0 {
		return nil
	}
	best, least := 0.0, math.Inf(1)
	for _, v := range sat {
		best = max(best, v)
	}
	for _, v := range cost {
		least = min(least, v)
	}
	var quiet []int
	for round, s := range sat {
		if c, ok := cost[round]; ok && s >= (1-quietSlack)*best && c <= (1+quietSlack)*least {
			quiet = append(quiet, round)
		}
	}
	slices.Sort(quiet)
	return quiet
}

// figure is one figure of a run, by its JSON key: each run's, and the
// pair's median over rounds.
type figure struct {
	key    string
	run    func(*PairRun) *float64
	median func(*Summary) *float64
}

// ratioFigures are the figures compared with nginx's, by their JSON key:
// each run's, and the pair's median over rounds.
var ratioFigures = []figure{
	{"addedP50", func(r *PairRun) *float64 { return r.AddedP50 }, func(s *Summary) *float64 { return s.AddedP50 }},
	{"addedP90", func(r *PairRun) *float64 { return r.AddedP90 }, func(s *Summary) *float64 { return s.AddedP90 }},
	{"addedP99", func(r *PairRun) *float64 { return r.AddedP99 }, func(s *Summary) *float64 { return s.AddedP99 }},
	{"vcpuPer1kRps", func(r *PairRun) *float64 { return positive(r.VCPUPer1kRPS) }, func(s *Summary) *float64 { return s.VCPUPer1kRPS }},
	{"satCpuUsPerRequest", func(r *PairRun) *float64 { return positive(r.SatCPUusPerRequest) }, func(s *Summary) *float64 { return s.SatCPUusPerRequest }},
	{"rssMB", func(r *PairRun) *float64 { return positive(r.RSSMB) }, func(s *Summary) *float64 { return s.RSSMB }},
	{"anonMB", func(r *PairRun) *float64 { return positive(r.AnonMB) }, func(s *Summary) *float64 { return s.AnonMB }},
}

func positive(x float64) *float64 {
	if x <= 0 {
		return nil
	}
	return &x
}

// sameRounds pairs each run of pair with ref's run of the same round, over
// the rounds in which both ran (and keep holds).
func sameRounds(runs []*PairRun, pair, ref string, keep func(round int) bool) [][2]*PairRun {
	refs := map[int]*PairRun{}
	for _, r := range runs {
		if r.Pair == ref && r.Error == "" {
			refs[r.Round] = r
		}
	}
	var out [][2]*PairRun
	for _, r := range runs {
		if n := refs[r.Round]; r.Pair == pair && r.Error == "" && n != nil && keep(r.Round) {
			out = append(out, [2]*PairRun{r, n})
		}
	}
	return out
}

// perRoundRatios is, for each figure, the median over the rounds in which
// both pair and ref ran (and keep holds) of pair's figure over ref's in that
// round.
func perRoundRatios(runs []*PairRun, pair, ref string, keep func(round int) bool) map[string]float64 {
	ratios := map[string][]float64{}
	for _, rn := range sameRounds(runs, pair, ref, keep) {
		for _, f := range ratioFigures {
			if a, b := f.run(rn[0]), f.run(rn[1]); a != nil && b != nil && *b > 0 {
				ratios[f.key] = append(ratios[f.key], *a / *b)
			}
		}
	}
	out := map[string]float64{}
	for k, v := range ratios {
		out[k] = median(v)
	}
	return out
}

// Diff is a pair's added latency (or other figure) minus the reference
// pair's, taken within each round: the mean over the rounds and its
// standard error (the rounds' standard deviation over √rounds), in ms
// for latencies (in vCPU per 1,000 req/s for vcpuPer1kRps, despite the
// field names). A gap whose mean is
// within about two standard errors of zero is one the run cannot tell
// from the round-to-round noise.
type Diff struct {
	MeanMs float64 `json:"meanMs"`
	SEMs   float64 `json:"seMs"`
	Rounds int     `json:"rounds"`
}

// latencyFigures are the ratio figures that are added latencies (ms).
var latencyFigures = ratioFigures[:3]

// abFigures are the figures a "-b" pair is compared with its A pair by:
// the added latencies and CPU per 1,000 req/s.
var abFigures = ratioFigures[:4]

// perRoundDiffs is Diff for each of figures, over the rounds in which
// both pair and ref ran; none with fewer than two rounds.
func perRoundDiffs(runs []*PairRun, pair, ref string, figures []figure) map[string]Diff {
	out := map[string]Diff{}
	rounds := sameRounds(runs, pair, ref, func(int) bool { return true })
	for _, f := range figures {
		var d []float64
		for _, rn := range rounds {
			if a, b := f.run(rn[0]), f.run(rn[1]); a != nil && b != nil {
				d = append(d, *a-*b)
			}
		}
		if len(d) < 2 {
			continue
		}
		var mean, ss float64
		for _, x := range d {
			mean += x / float64(len(d))
		}
		for _, x := range d {
			ss += (x - mean) * (x - mean)
		}
		sd := math.Sqrt(ss / float64(len(d)-1))
		out[f.key] = Diff{MeanMs: mean, SEMs: sd / math.Sqrt(float64(len(d))), Rounds: len(d)}
	}
	return out
}

func (res *Result) finish() {
	res.Medians = nil
	nginxes := map[string]*Summary{}
	for _, name := range res.Pairs {
		var runs []*PairRun
		for _, r := range res.Runs {
			if r.Pair == name && r.Error == "" {
				runs = append(runs, r)
			}
		}
		if len(runs) == 0 {
			continue
		}
		s := &Summary{Pair: name, Baseline: baselineOf(name), Rounds: len(runs)}
		med := func(f func(*PairRun) *float64) *float64 {
			var v []float64
			for _, r := range runs {
				if p := f(r); p != nil {
					v = append(v, *p)
				}
			}
			if len(v) == 0 {
				return nil
			}
			m := median(v)
			return &m
		}
		val := func(x float64) *float64 { return &x }
		s.P50 = *med(func(r *PairRun) *float64 { return val(r.Load.P50) })
		s.P90 = *med(func(r *PairRun) *float64 { return val(r.Load.P90) })
		s.P99 = *med(func(r *PairRun) *float64 { return val(r.Load.P99) })
		s.AddedP50 = med(func(r *PairRun) *float64 { return r.AddedP50 })
		s.AddedP90 = med(func(r *PairRun) *float64 { return r.AddedP90 })
		s.AddedP99 = med(func(r *PairRun) *float64 { return r.AddedP99 })
		s.AddedExactP50 = med(func(r *PairRun) *float64 { return r.AddedExactP50 })
		s.AddedExactP90 = med(func(r *PairRun) *float64 { return r.AddedExactP90 })
		s.AddedExactP99 = med(func(r *PairRun) *float64 { return r.AddedExactP99 })
		s.SatQPS = med(func(r *PairRun) *float64 {
			if r.Saturation == nil {
				return nil
			}
			return val(r.Saturation.ActualQPS)
		})
		if len(runs[0].Proxies) > 0 {
			s.VCPUPer1kRPS = med(func(r *PairRun) *float64 { return val(r.VCPUPer1kRPS) })
			s.RSSMB = med(func(r *PairRun) *float64 { return val(r.RSSMB) })
			s.AnonMB = med(func(r *PairRun) *float64 { return val(r.AnonMB) })
			if runs[0].Saturation != nil {
				s.SatCPUusPerRequest = med(func(r *PairRun) *float64 { return val(r.SatCPUusPerRequest) })
			}
		}
		if name == "nginx" || name == "nginx-netns" {
			nginxes[name] = s
		}
		res.Medians = append(res.Medians, s)
	}
	for _, s := range res.Medians {
		ref := "nginx"
		if s.Baseline == "direct-netns" && nginxes["nginx-netns"] != nil {
			ref = "nginx-netns"
		}
		// A -b pair against its A pair needs no nginx pair in the run.
		if a, ok := strings.CutSuffix(s.Pair, "-b"); ok && slices.Contains(res.Pairs, a) {
			s.VsA, s.DiffToA = a, perRoundDiffs(res.Runs, s.Pair, a, abFigures)
		}
		nginx := nginxes[ref]
		if nginx == nil || strings.HasPrefix(s.Pair, "nginx") || s.VCPUPer1kRPS == nil {
			continue
		}
		s.VsPair = ref
		s.VsNginx = map[string]float64{}
		for _, f := range ratioFigures {
			if a, b := f.median(s), f.median(nginx); a != nil && b != nil && *b > 0 {
				s.VsNginx[f.key] = *a / *b
			}
		}
		all := func(int) bool { return true }
		s.VsNginxPerRound = perRoundRatios(res.Runs, s.Pair, ref, all)
		s.DiffPerRound = perRoundDiffs(res.Runs, s.Pair, ref, latencyFigures)
		if ref == "nginx-netns" && slices.Contains(res.Pairs, "nginx-netns-capture") {
			s.VsCapturePerRound = perRoundRatios(res.Runs, s.Pair, "nginx-netns-capture", all)
		}
		if s.QuietRounds = quietRounds(res.Runs, s.Baseline, ref); len(s.QuietRounds) > 0 {
			s.VsNginxQuiet = perRoundRatios(res.Runs, s.Pair, ref, func(round int) bool {
				return slices.Contains(s.QuietRounds, round)
			})
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// readResult reads a result written by writeJSON.
func readResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(res.Runs) == 0 {
		return nil, fmt.Errorf("%s: no runs", path)
	}
	return &res, nil
}

func writeJSON(w io.Writer, res *Result) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
}

// minReportRounds is the fewest interleaved rounds whose figures are
// reported (issue 3's benchmark); fewer, as for profiling, are allowed
// and marked.
const minReportRounds = 3

func writeTable(w io.Writer, res *Result) {
	c := res.Config
	fmt.Fprintf(w, "\n%g req/s, %d connections, %d-byte responses, %s per run (+%s warm-up), saturation %s, %d rounds\n",
		c.QPS, c.Conns, c.Size, c.Duration, c.Warmup, c.Saturation, c.Rounds)
	if c.Rounds < minReportRounds {
		fmt.Fprintf(w, "fewer than %d rounds: a look, not a measurement (figures to report need at least %d interleaved rounds)\n", minReportRounds, minReportRounds)
	}
	m := res.Machine
	fmt.Fprintf(w, "%d CPUs %s, Linux %s, %s, nginx %s, load average at start %s\n",
		m.CPUs, m.CPUModel, m.Kernel, m.Go, m.Nginx, m.LoadAvgAtStart)
	if wk := m.Wake; wk != nil {
		fmt.Fprintf(w, "thread wake-up round trip (two threads in read(2), one byte each way): %.1f µs on one CPU", wk.SameCPUMicros)
		if wk.CrossCPUMicros > 0 {
			fmt.Fprintf(w, ", %.1f µs across two", wk.CrossCPUMicros)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "latency in ms (fortio histogram); +pN = added vs the pair's baseline in the same round (direct on loopback;")
	fmt.Fprintln(w, "direct-netns, client netns → server netns over the bridge, for the *-netns pairs and trellis); per-proxy figures are A/B;")
	fmt.Fprintln(w, "RSS = VmRSS of the proxy's processes (nginx: master + worker), anon = their RssAnon (no executable pages);")
	fmt.Fprintln(w, "others = vCPU used by processes outside the benchmark during the measured run (other work on the machine);")
	fmt.Fprintln(w, "ratios to nginx: of the medians, then the median of the ratios within each round (per round), then that over")
	fmt.Fprintf(w, "the quiet rounds only (baseline saturation within %.0f%% of its best, nginx µs/req within %.0f%% of its least)\n", 100*quietSlack, 100*quietSlack)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tround\tp50\tp90\tp99\t+p50\t+p90\t+p99\tvCPU/1k rps\tsat rps\tsat µs/req\tRSS MB\tanon MB\tothers\t")
	opt := func(p *float64, f string) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf(f, *p)
	}
	for _, r := range res.Runs {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\tfailed: %s\t\t\t\t\t\t\t\t\t\t\n", r.Pair, r.Round, firstLine(r.Error))
			continue
		}
		cpu, sat, rss, anon, satQPS := "-", "-", "-", "-", "-"
		if len(r.Proxies) > 0 {
			cpu = perProxy(r.Proxies, func(p *ProxyStats) float64 { return p.VCPUPer1kRPS }, "%.3f")
			rss = perProxy(r.Proxies, func(p *ProxyStats) float64 { return p.RSSMB }, "%.1f")
			anon = perProxy(r.Proxies, func(p *ProxyStats) float64 { return p.AnonMB }, "%.1f")
		}
		if r.Saturation != nil {
			satQPS = fmt.Sprintf("%.0f", r.Saturation.ActualQPS)
			if len(r.Proxies) > 0 {
				sat = perProxy(r.Proxies, func(p *ProxyStats) float64 { return p.SatCPUusPerRequest }, "%.1f")
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t\n", r.Pair, r.Round,
			r.Load.P50, r.Load.P90, r.Load.P99,
			opt(r.AddedP50, "%.3f"), opt(r.AddedP90, "%.3f"), opt(r.AddedP99, "%.3f"), cpu, satQPS, sat, rss, anon, r.OtherVCPU)
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t\t\t\t")
	fmt.Fprintln(tw, "median\t\t\t\t\t\t\t\tper proxy\t\tper proxy\tper proxy\tper proxy\t")
	for _, s := range res.Medians {
		fmt.Fprintf(tw, "%s\t%d rounds\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Pair, s.Rounds,
			s.P50, s.P90, s.P99,
			opt(s.AddedP50, "%.3f"), opt(s.AddedP90, "%.3f"), opt(s.AddedP99, "%.3f"),
			opt(s.VCPUPer1kRPS, "%.3f"), opt(s.SatQPS, "%.0f"), opt(s.SatCPUusPerRequest, "%.1f"), opt(s.RSSMB, "%.1f"), opt(s.AnonMB, "%.1f"))
	}
	for _, s := range res.Medians {
		// Rows without figures (no nginx pair, no A pair) are skipped.
		for _, row := range []struct {
			label  string
			ratios map[string]float64
		}{{s.Pair + " / " + s.VsPair, s.VsNginx}, {"per round", s.VsNginxPerRound}, {quietLabel(s.QuietRounds), s.VsNginxQuiet},
			{"per round / nginx-netns-capture", s.VsCapturePerRound}} {
			if row.ratios == nil {
				continue
			}
			x := func(k string) string {
				v, ok := row.ratios[k]
				if !ok || math.IsNaN(v) {
					return "-"
				}
				return fmt.Sprintf("%.2f×", v)
			}
			fmt.Fprintf(tw, "%s\t\t\t\t\t%s\t%s\t%s\t%s\t\t%s\t%s\t%s\t\n", row.label,
				x("addedP50"), x("addedP90"), x("addedP99"), x("vcpuPer1kRps"), x("satCpuUsPerRequest"), x("rssMB"), x("anonMB"))
		}
		if len(s.DiffPerRound) > 0 {
			d := func(k string) string { return diffCell(s.DiffPerRound, k, "%+.0f ± %.0f µs") }
			fmt.Fprintf(tw, "Δ to %s per round, mean ± se\t\t\t\t\t%s\t%s\t%s\t\t\t\t\t\t\n", s.VsPair, d("addedP50"), d("addedP90"), d("addedP99"))
		}
		if len(s.DiffToA) > 0 {
			d := func(k string) string { return diffCell(s.DiffToA, k, "%+.1f ± %.1f µs") }
			fmt.Fprintf(tw, "%s − %s per round, mean ± se\t\t\t\t\t%s\t%s\t%s\t%s\t\t\t\t\t\n", s.Pair, s.VsA,
				d("addedP50"), d("addedP90"), d("addedP99"), diffCell(s.DiffToA, "vcpuPer1kRps", "%+.1f ± %.1f µs/req"))
		}
	}
	tw.Flush()
	for name, reason := range res.Skipped {
		fmt.Fprintf(w, "\n%s: skipped: %s\n", name, reason)
	}
	if len(res.Skipped) == 0 {
		fmt.Fprintln(w)
	}
}

// diffCell is the table's cell for diffs[k]: mean and standard error
// times 1,000 (ms → µs; vCPU per 1,000 req/s → µs of CPU per request)
// in format, "-" when there is none.
func diffCell(diffs map[string]Diff, k, format string) string {
	v, ok := diffs[k]
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, 1000*v.MeanMs, 1000*v.SEMs)
}

// quietLabel names the quiet rounds in the table: "quiet 1,3,4".
func quietLabel(rounds []int) string {
	parts := make([]string, len(rounds))
	for i, r := range rounds {
		parts[i] = fmt.Sprint(r)
	}
	return "quiet " + strings.Join(parts, ",")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
