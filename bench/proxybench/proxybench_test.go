package main

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config/ingest"
	"github.com/trellismesh/trellis/internal/config/schema"
)

func TestParseStat(t *testing.T) {
	// The command name may contain spaces and parentheses.
	line := "4242 (nginx: (worker) x) S 4241 4241 4241 0 -1 4194624 1234 0 0 0 150 27 0 0 20 0 1 0 99 12345 678 18446744073709551615\n"
	s, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != 4241 || s.utime != 150 || s.stime != 27 {
		t.Fatalf("got %+v", s)
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tnginx\nVmHWM:\t   10240 kB\nVmRSS:\t    9556 kB\nRssAnon:\t    3484 kB\nRssFile:\t    6068 kB\n"
	if got, want := parseStatus([]byte(in)), (mem{RSS: 9556, HWM: 10240, Anon: 3484}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestOwnProcess(t *testing.T) {
	tree := procTree(os.Getpid())
	if len(tree) == 0 || tree[0] != os.Getpid() {
		t.Fatalf("procTree = %v", tree)
	}
	if m := memKB(os.Getpid()); m.RSS == 0 || m.Anon == 0 || m.HWM < m.RSS {
		t.Fatalf("memKB = %+v", m)
	}
	if _, err := readStat(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestMedianPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Fatalf("median = %v", m)
	}
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(i + 1)
	}
	for p, want := range map[float64]float64{50: 50, 90: 90, 99: 99, 100: 100} {
		if got := percentile(v, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

// approx reports whether a and b agree to 1e-9.
func approx(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// addRound adds one round's runs to res as the harness does: per-proxy
// means, then the latency added over the round's baseline.
func addRound(res *Result, runs []*PairRun) {
	for _, r := range runs {
		r.aggregate()
	}
	addedLatency(runs)
	res.Runs = append(res.Runs, runs...)
}

func TestAddedLatencyAndRatios(t *testing.T) {
	res := &Result{Pairs: []string{"direct", "nginx", "naive"}}
	for round := 1; round <= 3; round++ {
		px := func(cpu float64) []*ProxyStats { return []*ProxyStats{{VCPUPer1kRPS: cpu}, {VCPUPer1kRPS: cpu}} }
		runs := []*PairRun{
			{Pair: "direct", Round: round, Load: LoadResult{P50: 0.1, P90: 0.2, P99: 0.3}},
			{Pair: "nginx", Round: round, Load: LoadResult{P50: 0.3, P90: 0.4, P99: 0.6}, Proxies: px(0.07)},
			{Pair: "naive", Round: round, Load: LoadResult{P50: 0.5, P90: 0.6, P99: 0.9}, Proxies: px(0.14)},
		}
		addRound(res, runs)
	}
	res.finish()
	naive := res.Medians[2]
	if naive.Pair != "naive" || naive.Rounds != 3 {
		t.Fatalf("medians = %+v", res.Medians)
	}
	if !approx(*naive.AddedP50, 0.4) || !approx(naive.VsNginx["addedP50"], 2) || !approx(naive.VsNginx["vcpuPer1kRps"], 2) {
		t.Fatalf("naive = %+v, vsNginx %v", naive, naive.VsNginx)
	}
	if res.Medians[0].AddedP50 != nil {
		t.Fatal("direct has an added latency")
	}
}

// TestPerRoundRatios checks the same-round ratio against the ratio of
// medians when noise reaches the pairs in different rounds: the pair's
// second round and nginx's third are slow, so the medians compare a slow
// pair run with a quiet nginx one (3×) while every round taken alone says
// 1× but the pair's noisy one (median 1×); a round whose nginx run failed
// is left out.
func TestPerRoundRatios(t *testing.T) {
	res := &Result{Pairs: []string{"direct", "nginx", "naive"}}
	for i, added := range [][2]float64{{0.2, 0.2}, {0.2, 0.6}, {0.6, 0.6}, {0, 0.9}} {
		round := i + 1
		runs := []*PairRun{
			{Pair: "direct", Round: round, Load: LoadResult{P50: 0.1, P90: 0.1, P99: 0.1}},
			{Pair: "nginx", Round: round, Load: LoadResult{P50: 0.1 + added[0]}, Proxies: []*ProxyStats{{VCPUPer1kRPS: 0.1}}},
			{Pair: "naive", Round: round, Load: LoadResult{P50: 0.1 + added[1]}, Proxies: []*ProxyStats{{VCPUPer1kRPS: 0.1}}},
		}
		if round == 4 {
			runs[1].Error = "nginx failed"
		}
		addRound(res, runs)
	}
	res.finish()
	tr := res.Medians[2]
	if tr.Pair != "naive" || !approx(tr.VsNginx["addedP50"], 3) {
		t.Fatalf("ratio of medians = %v (naive %+v), want 3 (0.6 / 0.2)", tr.VsNginx, tr)
	}
	if !approx(tr.VsNginxPerRound["addedP50"], 1) || !approx(tr.VsNginxPerRound["vcpuPer1kRps"], 1) {
		t.Fatalf("per-round ratios = %v, want 1 (rounds 1–3: 1, 3, 1)", tr.VsNginxPerRound)
	}
	var out strings.Builder
	writeTable(&out, res)
	if !strings.Contains(out.String(), "per round") {
		t.Fatalf("table has no per-round line:\n%s", out.String())
	}
}

// TestRoundOrder: baselines run first in every round, the other pairs
// rotate, so each runs first once every len(rest) rounds.
func TestRoundOrder(t *testing.T) {
	names := []string{"direct-netns", "nginx-netns", "trellis", "trellis-tproxy"}
	for round, want := range map[int][]int{1: {0, 1, 2, 3}, 2: {0, 2, 3, 1}, 3: {0, 3, 1, 2}, 4: {0, 1, 2, 3}} {
		if got := roundOrder(names, round); !slices.Equal(got, want) {
			t.Errorf("round %d: order %v, want %v", round, got, want)
		}
	}
	if got := roundOrder([]string{"direct"}, 5); !slices.Equal(got, []int{0}) {
		t.Errorf("baseline alone: %v", got)
	}
}

// TestDiffPerRound: the gap to nginx taken within each round, its mean
// and standard error (added p50 per round: nginx 0.2, the pair 0.21,
// 0.23, 0.25 → +0.01, +0.03, +0.05 ms: mean 0.03, sd 0.02, se 0.02/√3),
// printed in µs.
func TestDiffPerRound(t *testing.T) {
	res := &Result{Pairs: []string{"direct-netns", "nginx-netns", "trellis"}}
	for round, p50 := range []float64{0.31, 0.33, 0.35} {
		px := []*ProxyStats{{VCPUPer1kRPS: 0.1}}
		addRound(res, []*PairRun{
			{Pair: "direct-netns", Round: round + 1, Load: LoadResult{P50: 0.1}},
			{Pair: "nginx-netns", Round: round + 1, Load: LoadResult{P50: 0.3}, Proxies: px},
			{Pair: "trellis", Round: round + 1, Load: LoadResult{P50: p50}, Proxies: px},
		})
	}
	res.finish()
	d := res.Medians[2].DiffPerRound["addedP50"]
	if d.Rounds != 3 || math.Abs(d.MeanMs-0.03) > 1e-9 || math.Abs(d.SEMs-0.02/math.Sqrt(3)) > 1e-9 {
		t.Fatalf("diff %+v, want mean 0.03 ms, se %.5f, 3 rounds", d, 0.02/math.Sqrt(3))
	}
	var out strings.Builder
	writeTable(&out, res)
	if !strings.Contains(out.String(), "+30 ± 12 µs") {
		t.Fatalf("table has no difference line:\n%s", out.String())
	}
}

// TestDiffToA: a "-b" pair (another sidecar build in the same rounds) is
// compared with its A pair within each round: added p50 0.30 → 0.29,
// 0.32 → 0.30, 0.34 → 0.31 ms (−10, −20, −30 µs: mean −20, sd 10, se 10/√3)
// and CPU 0.100 → 0.098 vCPU per 1,000 req/s (−2 µs per request).
func TestDiffToA(t *testing.T) {
	// The A/B line needs no nginx pair in the run.
	for _, withNginx := range []bool{true, false} {
		t.Run(fmt.Sprintf("nginx=%v", withNginx), func(t *testing.T) { testDiffToA(t, withNginx) })
	}
}

func testDiffToA(t *testing.T, withNginx bool) {
	res := &Result{Pairs: []string{"direct-netns", "trellis", "trellis-b"}}
	if withNginx {
		res.Pairs = []string{"direct-netns", "nginx-netns", "trellis", "trellis-b"}
	}
	for round, p50 := range [][2]float64{{0.40, 0.39}, {0.42, 0.40}, {0.44, 0.41}} {
		runs := []*PairRun{
			{Pair: "direct-netns", Round: round + 1, Load: LoadResult{P50: 0.1}},
			{Pair: "trellis", Round: round + 1, Load: LoadResult{P50: p50[0]}, Proxies: []*ProxyStats{{VCPUPer1kRPS: 0.1}}},
			{Pair: "trellis-b", Round: round + 1, Load: LoadResult{P50: p50[1]}, Proxies: []*ProxyStats{{VCPUPer1kRPS: 0.098}}},
		}
		if withNginx {
			runs = append(runs, &PairRun{Pair: "nginx-netns", Round: round + 1, Load: LoadResult{P50: 0.3}, Proxies: []*ProxyStats{{VCPUPer1kRPS: 0.1}}})
		}
		addRound(res, runs)
	}
	res.finish()
	medians := map[string]*Summary{}
	for _, m := range res.Medians {
		medians[m.Pair] = m
	}
	b := medians["trellis-b"]
	if b == nil || b.VsA != "trellis" {
		t.Fatalf("trellis-b compared with %+v, want trellis", b)
	}
	p50, cpu := b.DiffToA["addedP50"], b.DiffToA["vcpuPer1kRps"]
	if p50.Rounds != 3 || math.Abs(p50.MeanMs+0.02) > 1e-9 || math.Abs(p50.SEMs-0.01/math.Sqrt(3)) > 1e-9 {
		t.Fatalf("added p50 diff %+v, want mean −0.02 ms, se %.5f", p50, 0.01/math.Sqrt(3))
	}
	if math.Abs(cpu.MeanMs+0.002) > 1e-9 {
		t.Fatalf("CPU diff %+v, want −0.002 vCPU per 1,000 req/s", cpu)
	}
	if a := medians["trellis"]; a.DiffToA != nil {
		t.Fatalf("the A pair has a diff to itself: %+v", a.DiffToA)
	}
	var out strings.Builder
	writeTable(&out, res)
	if !strings.Contains(out.String(), "trellis-b − trellis per round") || !strings.Contains(out.String(), "-20.0 ± 5.8 µs") || !strings.Contains(out.String(), "-2.0 ± 0.0 µs/req") {
		t.Fatalf("table has no A/B line:\n%s", out.String())
	}
}

// TestCaptureRatios: with nginx-netns-capture in the run, a sidecar pair
// gets its per-round ratios to it as well as to nginx-netns (the pair adds
// 0.3 ms, nginx 0.2, nginx behind capture 0.25), and the table shows them.
func TestCaptureRatios(t *testing.T) {
	res := &Result{Pairs: []string{"direct-netns", "nginx-netns", "nginx-netns-capture", "trellis"}}
	for round := 1; round <= 3; round++ {
		px := []*ProxyStats{{VCPUPer1kRPS: 0.1}}
		addRound(res, []*PairRun{
			{Pair: "direct-netns", Round: round, Load: LoadResult{P50: 0.1}},
			{Pair: "nginx-netns", Round: round, Load: LoadResult{P50: 0.3}, Proxies: px},
			{Pair: "nginx-netns-capture", Round: round, Load: LoadResult{P50: 0.35}, Proxies: px},
			{Pair: "trellis", Round: round, Load: LoadResult{P50: 0.4}, Proxies: px},
		})
	}
	res.finish()
	tr := res.Medians[3]
	if tr.Pair != "trellis" || !approx(tr.VsNginxPerRound["addedP50"], 1.5) {
		t.Fatalf("trellis per round %v, want addedP50 1.5 (0.3 / 0.2)", tr.VsNginxPerRound)
	}
	if !approx(tr.VsCapturePerRound["addedP50"], 1.2) {
		t.Fatalf("trellis per round to capture %v, want addedP50 1.2 (0.3 / 0.25)", tr.VsCapturePerRound)
	}
	var out strings.Builder
	writeTable(&out, res)
	if !strings.Contains(out.String(), "per round / nginx-netns-capture") || !strings.Contains(out.String(), "1.20×") {
		t.Fatalf("table has no capture line:\n%s", out.String())
	}
}

// TestQuietRounds checks the quiet-round rule: round 2's baseline
// saturated 20 % below its best and round 3's nginx used 15 % more CPU per
// request than its least, so only rounds 1 and 4 are quiet, and the quiet
// ratios leave out round 2's and 3's slow sidecar runs (4× and 2× nginx's
// added latency; 1× in the quiet rounds) while the all-rounds median
// (1×, 2×, 4×, 1× → 1.5×) does not.
func TestQuietRounds(t *testing.T) {
	res := &Result{Pairs: []string{"direct", "nginx", "naive"}}
	for i, c := range []struct{ sat, nginxUS, added float64 }{
		{30000, 20, 0.2}, {24000, 20, 0.8}, {30000, 23, 0.4}, {29000, 21, 0.2},
	} {
		round := i + 1
		runs := []*PairRun{
			{Pair: "direct", Round: round, Saturation: &LoadResult{ActualQPS: c.sat}},
			{Pair: "nginx", Round: round, Load: LoadResult{P50: 0.2}, Saturation: &LoadResult{},
				Proxies: []*ProxyStats{{VCPUPer1kRPS: 0.1, SatCPUusPerRequest: c.nginxUS}}},
			{Pair: "naive", Round: round, Load: LoadResult{P50: c.added}, Saturation: &LoadResult{},
				Proxies: []*ProxyStats{{VCPUPer1kRPS: 0.1, SatCPUusPerRequest: 30}}},
		}
		addRound(res, runs)
	}
	res.finish()
	tr := res.Medians[2]
	if !slices.Equal(tr.QuietRounds, []int{1, 4}) {
		t.Fatalf("quiet rounds = %v, want [1 4]", tr.QuietRounds)
	}
	if !approx(tr.VsNginxQuiet["addedP50"], 1) || !approx(tr.VsNginxPerRound["addedP50"], 1.5) {
		t.Fatalf("quiet ratios %v, per round %v; want addedP50 1 and 1.5", tr.VsNginxQuiet, tr.VsNginxPerRound)
	}
	var out strings.Builder
	writeTable(&out, res)
	if !strings.Contains(out.String(), "quiet 1,4") {
		t.Fatalf("table has no quiet line:\n%s", out.String())
	}
	// -report computes the same from a saved result.
	path := filepath.Join(t.TempDir(), "result.json")
	var saved bytes.Buffer
	writeJSON(&saved, res)
	if err := os.WriteFile(path, saved.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := readResult(path)
	if err != nil {
		t.Fatal(err)
	}
	again.finish()
	if q := again.Medians[2].QuietRounds; !slices.Equal(q, []int{1, 4}) {
		t.Fatalf("quiet rounds from the saved result = %v, want [1 4]", q)
	}
	unsaturated := []*PairRun{{Pair: "direct", Round: 1}, {Pair: "nginx", Round: 1, SatCPUusPerRequest: 20}}
	if q := quietRounds(unsaturated, "direct", "nginx"); q != nil {
		t.Fatalf("quiet rounds without a baseline saturation = %v, want none", q)
	}
}

// TestMeshConfig decodes and validates the control plane's configuration
// with -services as `trellis discovery` reads its config directory.
func TestMeshConfig(t *testing.T) {
	tp := &topology{
		server: netns{addr: netip.MustParseAddr("10.89.7.11")},
		client: netns{addr: netip.MustParseAddr("10.89.7.10")},
	}
	decoder := ingest.Decoder(schema.Istio())
	for _, mtls := range []bool{false, true} {
		files := map[string]string{"bench.yaml": tp.meshConfig(mtls), "services.yaml": extraServices(999)}
		kinds := map[string]int{}
		hosts := map[string]bool{}
		for name, data := range files {
			cfgs, err := decoder(name, []byte(data))
			if err != nil {
				t.Fatalf("mtls=%v %s: %v", mtls, name, err)
			}
			for _, c := range cfgs {
				if _, err := ingest.Validate(c); err != nil {
					t.Fatalf("mtls=%v %s %s/%s: %v", mtls, name, c.Namespace, c.Name, err)
				}
				kinds[c.Kind.Kind]++
				if se, ok := c.Spec.(*networking.ServiceEntry); ok {
					for _, h := range se.GetHosts() {
						hosts[h] = true
					}
				}
			}
		}
		want := map[string]int{"ServiceEntry": 1000, "WorkloadEntry": 2 + 5*999}
		if mtls {
			want["PeerAuthentication"] = 1
		}
		for k, n := range want {
			if kinds[k] != n {
				t.Errorf("mtls=%v: %d %s, want %d (all: %v)", mtls, kinds[k], k, n, kinds)
			}
		}
		if len(hosts) != 1000 || !hosts[echoHost] {
			t.Errorf("mtls=%v: %d distinct hosts (echo: %v), want 1000", mtls, len(hosts), hosts[echoHost])
		}
	}
}

// TestFewRoundsMarked: a run of fewer rounds than figures need (as for
// profiling) says so in its table; one of enough rounds does not.
func TestFewRoundsMarked(t *testing.T) {
	for rounds, want := range map[int]bool{1: true, 2: true, 3: false, 16: false} {
		var out strings.Builder
		writeTable(&out, &Result{Config: Config{Rounds: rounds}})
		if got := strings.Contains(out.String(), "fewer than 3 rounds"); got != want {
			t.Errorf("%d rounds: marked %v, want %v:\n%s", rounds, got, want, out.String())
		}
	}
}
