// Command proxybench is the data-plane benchmark: Istio's published setup,
// fortio client → proxy → proxy → fortio echo server, HTTP/1.1, 1 KB
// responses, 1,000 requests/s over 16 keep-alive connections, with the two
// proxies joined by TLS 1.3. Each round runs every pair once, interleaved
// (direct, nginx, naive, trellis); each run is a warm-up, a measured run at
// the target rate (latency, CPU per 1,000 requests/s, RSS) and a run at
// fortio's maximum rate (CPU per request at saturation). Added latency is a
// pair's percentile minus the direct run's percentile of the same round.
//
//	go run ./bench/proxybench                       # 3 rounds, 30 s per run
//	go run ./bench/proxybench -rounds 5 -duration 20s -o json
//	go run ./bench/proxybench -pairs direct,naive -rounds 1 -duration 3s -warmup 1s -saturation 2s
//
// Every process binds 127.0.0.1, runs in its own process group and is killed
// with its group on exit or ctrl-c; the temporary directory (configurations,
// certificates, logs) is removed unless -keep is given. The proxies run one
// worker each: GOMAXPROCS=1 for Go proxies, worker_processes 1 for nginx.
//
// Internal subcommands (re-executed by the harness): "_server" is the echo
// server, "_naive" an httputil.ReverseProxy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	flog "fortio.org/log"
)

type options struct {
	pairs      []string
	rounds     int
	rotate     bool
	duration   time.Duration
	warmup     time.Duration
	saturation time.Duration
	qps        float64
	conns      int
	size       int
	resolution float64
	uniform    bool
	output     string
	keep       bool
	timeout    time.Duration
	nginx      string
	trellis    string
	profile    string
	waitIdle   time.Duration
	save       string
	report     string
	services   int
	sidecarEnv string
	proxyBin   string
	proxyBinB  string
}

// Env is what pairs get to start their processes.
type Env struct {
	Dir   string // private temporary directory, removed at exit
	Certs Certs  // TLS leg between proxy A and proxy B
	Self  string // this executable, for re-executed helpers
	Nginx string // nginx binary, "" if not found
	// Trellis is the trellis binary for the sidecar pair (-trellis, or built
	// into Dir on first use).
	Trellis string
	// TrellisProxy is the sidecars' binary (-trellis-proxy, or cmd/trellis-proxy
	// built into Dir on first use); "-" runs them as `trellis proxy`.
	TrellisProxy string
	// TrellisProxyB is the sidecars' binary of the "-b" pairs
	// (-trellis-proxy-b): a second build run in the same interleaved
	// rounds, for A/B comparisons of code changes on a noisy host.
	TrellisProxyB string
	// SidecarEnv is extra environment of the trellis sidecars (-sidecar-env).
	SidecarEnv []string
	// Services is how many services the control plane's configuration
	// has (-services): the echo service and Services-1 others.
	Services int
	seq      atomic.Int64

	topoMu  sync.Mutex
	topo    *topology // network namespaces of the netns pairs, created on first use
	topoErr error
}

// next returns a number unique within the benchmark, for file names.
func (e *Env) next() int64 { return e.seq.Add(1) }

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "_server":
			err = serverMain(os.Args[2:])
		case "_naive":
			err = naiveMain(os.Args[2:])
		case "_relay":
			err = relayMain(os.Args[2:])
		case "_erelay":
			err = erelayMain(os.Args[2:])
		case "_load":
			err = loadMain(os.Args[2:])
		case "_check":
			err = checkMain(os.Args[2:])
		default:
			os.Exit(bench())
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "proxybench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	os.Exit(bench())
}

func bench() int {
	var o options
	pairList := flag.String("pairs", "direct,nginx,naive,direct-netns,nginx-netns,trellis", "pairs to run in each round, in order (a pair's baseline, direct or direct-netns, is added if missing)")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (≥ 3 for reported figures)")
	flag.BoolVar(&o.rotate, "rotate", true, "rotate the order of the measured pairs from round to round (baselines still run first), so that no pair always runs right after the same one")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured run at -qps, per pair per round")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured run at -qps before it")
	flag.DurationVar(&o.saturation, "saturation", 10*time.Second, "run at maximum rate, per pair per round (0: skip)")
	flag.Float64Var(&o.qps, "qps", 1000, "target requests per second of the measured run")
	flag.IntVar(&o.conns, "c", 16, "connections (fortio threads), HTTP/1.1 keep-alive")
	flag.IntVar(&o.size, "size", 1024, "response body size, bytes")
	flag.Float64Var(&o.resolution, "resolution", 0.00001, "fortio histogram resolution, seconds")
	flag.BoolVar(&o.uniform, "uniform", true, "stagger the connections' requests evenly (fortio -uniform) instead of sending them in bursts")
	flag.StringVar(&o.output, "o", "table", "output: table or json")
	flag.StringVar(&o.save, "save", "", "also write the JSON result to this file")
	flag.StringVar(&o.report, "report", "", "run nothing: print the report of a result saved with -save (medians and ratios computed again)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configurations, logs)")
	flag.DurationVar(&o.timeout, "timeout", 0, "stop everything after this long (0: the planned time plus 2 minutes)")
	flag.DurationVar(&o.waitIdle, "wait-idle", 0, "before each run, wait up to this long for the rest of the machine to use < 0.2 vCPU (shared machines)")
	flag.StringVar(&o.nginx, "nginx", "", "nginx binary (default: from PATH or /usr/sbin)")
	flag.StringVar(&o.trellis, "trellis", "", "trellis binary of the trellis pairs' control plane (trellis discovery), and of their sidecars with -trellis-proxy - (default: go build ./cmd/trellis into the temporary directory)")
	flag.StringVar(&o.proxyBin, "trellis-proxy", "", `sidecar binary of the trellis pairs: the slim trellis-proxy that images run (default: go build ./cmd/trellis-proxy into the temporary directory); "-": run them as "trellis proxy" of the -trellis binary`)
	flag.StringVar(&o.proxyBinB, "trellis-proxy-b", "", `sidecar binary of the pairs trellis-b and trellis-tproxy-b (the same pairs with another build, for A/B runs in the same rounds)`)
	flag.StringVar(&o.sidecarEnv, "sidecar-env", "", "extra environment of the trellis sidecars, comma-separated (e.g. GOGC=400,GOMEMLIMIT=30MiB), for A/B runs of runtime settings")
	flag.IntVar(&o.services, "services", 1, "services in the trellis pairs' mesh configuration: the echo service and N-1 more (HTTP, 5 endpoints each, seen by both sidecars), for memory with a large configuration")
	flag.StringVar(&o.profile, "profile", "", "save CPU and allocation profiles of proxies with a pprof endpoint (trellis) during saturation into this directory")
	flag.Parse()
	if o.report != "" {
		return report(o)
	}
	o.pairs = strings.Split(*pairList, ",")
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		return 2
	}
	res, err := run(o)
	if res != nil && o.save != "" {
		if f, ferr := os.Create(o.save); ferr == nil {
			writeJSON(f, res)
			f.Close()
		} else {
			fmt.Fprintln(os.Stderr, "proxybench:", ferr)
		}
	}
	if res != nil {
		o.print(res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		if errors.Is(err, errInterrupted) {
			return 130
		}
		return 1
	}
	return 0
}

// report prints the report of a saved result, with medians, ratios and
// quiet rounds computed by this build.
func report(o options) int {
	res, err := readResult(o.report)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		return 1
	}
	res.finish()
	o.print(res)
	return 0
}

// print writes res to standard output in the -o format.
func (o *options) print(res *Result) {
	if o.output == "json" {
		writeJSON(os.Stdout, res)
	} else {
		writeTable(os.Stdout, res)
	}
}

func (o *options) validate() error {
	switch {
	case o.rounds < 1 || o.rounds > 20:
		return fmt.Errorf("-rounds must be 1..20")
	case o.duration < time.Second || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration must be 1s..10m")
	case o.warmup < 0 || o.warmup > time.Minute:
		return fmt.Errorf("-warmup must be 0..1m")
	case o.saturation < 0 || o.saturation > 2*time.Minute:
		return fmt.Errorf("-saturation must be 0..2m")
	case o.qps <= 0 || o.qps > 100000:
		return fmt.Errorf("-qps must be in (0, 100000]")
	case o.conns < 1 || o.conns > 256:
		return fmt.Errorf("-c must be 1..256")
	case o.size < 0 || o.size > 256*1024:
		return fmt.Errorf("-size must be 0..262144")
	case o.resolution <= 0 || o.resolution > 0.001:
		return fmt.Errorf("-resolution must be in (0, 0.001]")
	case o.waitIdle < 0 || o.waitIdle > 10*time.Minute:
		return fmt.Errorf("-wait-idle must be 0..10m")
	case o.output != "table" && o.output != "json":
		return fmt.Errorf("-o must be table or json")
	case o.services < 1 || o.services > 20000:
		return fmt.Errorf("-services must be 1..20000")
	}
	if o.sidecarEnv != "" {
		for _, kv := range strings.Split(o.sidecarEnv, ",") {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return fmt.Errorf("-sidecar-env: %q is not NAME=VALUE", kv)
			}
		}
	}
	// Each pair's baseline runs in the same round: add missing ones in front.
	var pre []string
	for _, name := range o.pairs {
		name = strings.TrimSpace(name)
		if _, err := lookupPair(name); err != nil {
			return err
		}
		if b := baselineOf(name); b != "" && !slices.Contains(o.pairs, b) && !slices.Contains(pre, b) {
			pre = append(pre, b)
		}
	}
	o.pairs = append(pre, o.pairs...)
	seen := map[string]bool{}
	for i, name := range o.pairs {
		name = strings.TrimSpace(name)
		o.pairs[i] = name
		if _, err := lookupPair(name); err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("pair %q listed twice", name)
		}
		seen[name] = true
	}
	if o.timeout == 0 {
		per := o.warmup + o.duration + o.saturation + o.waitIdle + 15*time.Second
		o.timeout = time.Duration(o.rounds*len(o.pairs))*per + 2*time.Minute
	}
	return nil
}

func run(o options) (*Result, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	go func() {
		<-ctx.Done()
		stop() // a second ctrl-c kills the harness at once
	}()
	flog.SetLogLevelQuiet(flog.Error) // no per-thread catch-up warnings

	dir, err := os.MkdirTemp("", "proxybench")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Nginx: o.nginx, Trellis: o.trellis, TrellisProxy: o.proxyBin, TrellisProxyB: o.proxyBinB, Services: o.services}
	if o.sidecarEnv != "" {
		e.SidecarEnv = strings.Split(o.sidecarEnv, ",")
	}
	defer func() {
		killAll()
		e.closeTopology()
		if o.keep {
			fmt.Fprintln(os.Stderr, "proxybench: kept", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if e.Nginx == "" {
		e.Nginx = findNginx()
	}
	if e.Self, err = os.Executable(); err != nil {
		return nil, err
	}
	if e.Certs, err = writeCerts(dir); err != nil {
		return nil, err
	}

	res := &Result{Config: configOf(o), Machine: machine(e.Nginx), Skipped: map[string]string{}}
	var active []Pair
	for _, name := range o.pairs {
		p, _ := lookupPair(name)
		if err := p.Available(e); err != nil {
			if reason, ok := isSkip(err); ok {
				res.Skipped[name] = reason
				fmt.Fprintf(os.Stderr, "proxybench: skipping %s: %s\n", name, reason)
				continue
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		active = append(active, p)
		res.Pairs = append(res.Pairs, name)
	}
	if len(active) == 0 {
		return res, fmt.Errorf("no pair to run")
	}

	srv, err := startProc(ctx, e, "server", e.Self, []string{"_server", "-listen", "127.0.0.1:0"}, nil, true)
	if err != nil {
		return nil, fmt.Errorf("echo server: %w", err)
	}
	defer srv.stop()
	if err := checkChain(ctx, "http://"+srv.addr+echoPath(o.size), "", o.size); err != nil {
		return nil, fmt.Errorf("echo server: %w", err)
	}

	var failed int
	for round := 1; round <= o.rounds; round++ {
		var roundRuns []*PairRun
		order := roundOrder(res.Pairs, round)
		if !o.rotate {
			order = roundOrder(res.Pairs, 1)
		}
		for _, i := range order {
			p := active[i]
			r, err := runPair(ctx, e, o, p, round, srv.addr)
			if ctx.Err() != nil {
				// Report the runs this round completed.
				addedLatency(roundRuns)
				res.Runs = append(res.Runs, roundRuns...)
				res.finish()
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return res, fmt.Errorf("-timeout %v reached", o.timeout)
				}
				return res, errInterrupted
			}
			if err != nil {
				r.Error = err.Error()
				failed++
				fmt.Fprintf(os.Stderr, "round %d %-8s FAILED: %v\n", round, p.Name(), err)
			} else {
				fmt.Fprintf(os.Stderr, "round %d %-8s %s\n", round, p.Name(), r.summary())
			}
			roundRuns = append(roundRuns, r)
		}
		addedLatency(roundRuns)
		slices.SortStableFunc(roundRuns, func(a, b *PairRun) int {
			return slices.Index(res.Pairs, a.Pair) - slices.Index(res.Pairs, b.Pair)
		})
		res.Runs = append(res.Runs, roundRuns...)
	}
	res.finish()
	if failed > 0 {
		return res, fmt.Errorf("%d run(s) failed", failed)
	}
	return res, nil
}

// roundOrder is the order in which round runs the pairs (indexes into
// names): the baselines first, as given, then the other pairs as given
// rotated left by round-1, so that over the rounds each pair runs at each
// place, first after the baselines as often as any other.
func roundOrder(names []string, round int) []int {
	var order, rest []int
	for i, name := range names {
		if baselineOf(name) == "" {
			order = append(order, i)
		} else {
			rest = append(rest, i)
		}
	}
	if n := len(rest); n > 0 {
		k := (round - 1) % n
		rest = append(rest[k:], rest[:k]...)
	}
	return append(order, rest...)
}

func echoPath(size int) string { return "/echo?size=" + strconv.Itoa(size) }

// runPair starts the pair, checks it, warms it up, then measures it.
func runPair(ctx context.Context, e *Env, o options, p Pair, round int, upstream string) (*PairRun, error) {
	r := &PairRun{Pair: p.Name(), Round: round}
	if o.waitIdle > 0 {
		if others, ok := waitIdle(ctx, o.waitIdle, 0.2); !ok && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "round %d %-8s machine still busy after %v (others %.2f vCPU); running anyway\n", round, p.Name(), o.waitIdle, others)
		}
	}
	inst, err := p.Start(ctx, e, upstream)
	if err != nil {
		return r, fmt.Errorf("start: %w", err)
	}
	defer inst.Stop()
	url := "http://" + inst.Addr + echoPath(o.size)
	if err := checkChainIn(ctx, e, inst.Netns, url, inst.Host, o.size); err != nil {
		return r, err
	}
	spec := loadSpec{URL: url, Host: inst.Host, QPS: o.qps, Conns: o.conns, Resolution: o.resolution, Uniform: o.uniform}
	if o.warmup > 0 {
		w := spec
		w.Duration = o.warmup
		if _, _, err := runLoadIn(ctx, e, inst.Netns, w); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
	}
	for _, px := range inst.Proxies {
		r.Proxies = append(r.Proxies, &ProxyStats{Name: px.Name, PID: px.PID})
	}
	alive := func() error {
		for _, px := range r.Proxies {
			if _, err := readStat(px.PID); err != nil {
				return fmt.Errorf("proxy %s (pid %d) exited", px.Name, px.PID)
			}
		}
		return nil
	}
	cpu := func() []time.Duration {
		var out []time.Duration
		for _, px := range r.Proxies {
			out = append(out, cpuTime(px.PID))
		}
		return out
	}

	// Measured run at the target rate.
	m := spec
	m.Duration = o.duration
	m.Samples = true
	before := cpu()
	busy0, irq0 := systemCPU()
	ours0, t0 := cpuTime(os.Getpid()), time.Now()
	lr, loadCPU, err := runLoadIn(ctx, e, inst.Netns, m)
	busy1, irq1 := systemCPU()
	ours1, wall := cpuTime(os.Getpid())+loadCPU, time.Since(t0)
	after := cpu()
	if err != nil {
		return r, err
	}
	// CPU used outside the benchmark's processes (this one and its children),
	// and interrupt time, which no process is charged with.
	r.OtherVCPU = max(0, ((busy1-busy0)-(ours1-ours0)).Seconds()/wall.Seconds())
	r.IRQVCPU = (irq1 - irq0).Seconds() / wall.Seconds()
	if err := alive(); err != nil {
		return r, err
	}
	r.Load = lr
	for i, px := range r.Proxies {
		used := after[i] - before[i]
		px.CPUSeconds = used.Seconds()
		// vCPU per 1,000 req/s = (CPU s / wall s) / (req/s / 1000) = CPU s per 1,000 requests.
		px.VCPUPer1kRPS = used.Seconds() / float64(lr.Requests) * 1000
		m := memKB(px.PID)
		px.RSSMB = float64(m.RSS) / 1024
		px.AnonMB = float64(m.Anon) / 1024
	}
	if o.profile != "" {
		saveHeaps(ctx, o.profile, p.Name(), round, inst.Proxies)
	}

	// Saturation.
	if o.saturation > 0 {
		s := spec
		s.QPS = -1
		s.Duration = o.saturation
		var profiled func()
		if o.profile != "" {
			profiled = startProfiles(ctx, o.profile, p.Name(), round, inst.Proxies, o.saturation)
		}
		before := cpu()
		sr, _, err := runLoadIn(ctx, e, inst.Netns, s)
		after := cpu()
		if profiled != nil {
			profiled()
		}
		if err != nil {
			return r, fmt.Errorf("saturation: %w", err)
		}
		if err := alive(); err != nil {
			return r, err
		}
		r.Saturation = &sr
		for i, px := range r.Proxies {
			used := after[i] - before[i]
			px.SatCPUSeconds = used.Seconds()
			px.SatCPUusPerRequest = float64(used.Microseconds()) / float64(sr.Requests)
		}
	}
	for _, px := range r.Proxies {
		px.PeakRSSMB = float64(memKB(px.PID).HWM) / 1024
	}
	if lr.Non200 > 0 || (r.Saturation != nil && r.Saturation.Non200 > 0) {
		sat := int64(0)
		if r.Saturation != nil {
			sat = r.Saturation.Non200
		}
		r.Warning = fmt.Sprintf("non-200 responses: %d at %v qps, %d at saturation", lr.Non200, o.qps, sat)
		fmt.Fprintf(os.Stderr, "round %d %-8s WARNING: %s\n", round, p.Name(), r.Warning)
	}
	r.aggregate()
	return r, nil
}

// waitIdle waits until, over one second, processes outside the benchmark use
// less than limit vCPU; it gives up after max.
func waitIdle(ctx context.Context, max time.Duration, limit float64) (others float64, ok bool) {
	deadline := time.Now().Add(max)
	for {
		busy0, _ := systemCPU()
		ours0, t0 := cpuTime(os.Getpid()), time.Now()
		select {
		case <-ctx.Done():
			return others, false
		case <-time.After(time.Second):
		}
		busy1, _ := systemCPU()
		ours1 := cpuTime(os.Getpid())
		others = ((busy1 - busy0) - (ours1 - ours0)).Seconds() / time.Since(t0).Seconds()
		if others < limit {
			return others, true
		}
		if time.Now().After(deadline) {
			return others, false
		}
	}
}

// checkChain sends requests through the whole path until one returns 200 with
// a body of the expected size (up to 5 s).
func checkChain(ctx context.Context, url, host string, size int) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(5 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err == nil {
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && n == int64(size) {
				return nil
			}
			err = fmt.Errorf("status %d, %d body bytes", resp.StatusCode, n)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("chain check %s: %w", url, last)
}

// wakeRoundTrips is the wake-up probe's count on one CPU (a quarter of
// it across two): about a tenth of a second on a machine where a
// cross-CPU wake-up costs tens of microseconds.
const wakeRoundTrips = 4000

// machine describes where the benchmark ran.
func machine(nginx string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvgAtStart = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if wk, err := probeWake(wakeRoundTrips); err == nil {
		m.Wake = &wk
	} else {
		fmt.Fprintf(os.Stderr, "proxybench: wake-up probe: %v\n", err)
	}
	if nginx != "" {
		if out, err := exec.Command(nginx, "-v").CombinedOutput(); err == nil {
			m.Nginx = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
		}
	}
	return m
}
