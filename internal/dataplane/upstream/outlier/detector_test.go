package outlier_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// clock is a fake clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// fixture is a detector over n hosts with a fake clock; changes records
// OnChange calls.
type fixture struct {
	d       *outlier.Detector
	clock   *clock
	hosts   []*outlier.Monitor
	changes []string
}

func newFixture(t *testing.T, cfg outlier.Config, n int, rand func() uint64) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: time.Unix(1000, 0)}}
	d, err := outlier.New(cfg, outlier.Options{
		Now:  f.clock.now,
		Rand: rand,
		OnChange: func(changed []*outlier.Monitor) {
			for _, m := range changed {
				f.changes = append(f.changes, fmt.Sprintf("%s ejected=%v", m.Label(), m.Ejected()))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	for i := range n {
		f.hosts = append(f.hosts, d.Add(fmt.Sprintf("10.0.0.%d:80", i+1)))
	}
	return f
}

func (f *fixture) put(m *outlier.Monitor, r outlier.Result, times int) {
	for range times {
		m.Put(r)
	}
}

// tick advances the clock by d and runs one sweep.
func (f *fixture) tick(d time.Duration) {
	f.clock.advance(d)
	f.d.Tick(f.clock.t)
}

func status(code int) outlier.Result { return outlier.Result{Status: code} }

// manyHosts: with 20 hosts 10% allows two ejections.
const manyHosts = 20

func TestConsecutive5xx(t *testing.T) {
	f := newFixture(t, outlier.DefaultConfig(), manyHosts, nil)
	h := f.hosts[0]
	f.put(h, status(500), 4)
	f.put(h, status(200), 1) // a success resets the run
	f.put(h, status(503), 4)
	if h.Ejected() {
		t.Fatal("ejected after 4 consecutive 5xx")
	}
	f.put(h, status(500), 1)
	if !h.Ejected() {
		t.Fatal("not ejected after 5 consecutive 5xx")
	}
	st := h.State()
	if st.Ejections != 1 || st.LastType != outlier.Consecutive5xx || !st.LastEjection.Equal(f.clock.t) {
		t.Errorf("state %+v", st)
	}
	s := f.d.Stats()
	if s.Active != 1 || s.EnforcedTotal != 1 || s.Enforced[outlier.Consecutive5xx] != 1 {
		t.Errorf("stats %+v", s)
	}
	if len(f.changes) != 1 || f.changes[0] != "10.0.0.1:80 ejected=true" {
		t.Errorf("OnChange calls %v", f.changes)
	}
	// 4xx are successes for outlier detection.
	g := f.hosts[1]
	f.put(g, status(404), 10)
	if g.Ejected() {
		t.Error("4xx ejected a host")
	}
}

// TestEjectionBackoff: ejection lasts base × backoff; a host that fails
// again right after coming back stays out twice as long; one that behaves
// for an interval gets its backoff decremented; max_ejection_time caps it.
func TestEjectionBackoff(t *testing.T) {
	cfg := outlier.DefaultConfig() // interval 10s, base 30s, max 300s
	f := newFixture(t, cfg, manyHosts, nil)
	h := f.hosts[0]
	eject := func() {
		t.Helper()
		f.put(h, status(500), 5)
		if !h.Ejected() {
			t.Fatal("not ejected")
		}
	}
	ejectedFor := func() time.Duration {
		t.Helper()
		start := f.clock.t
		for h.Ejected() {
			f.tick(time.Second)
			if f.clock.t.Sub(start) > time.Hour {
				t.Fatal("never un-ejected")
			}
		}
		return f.clock.t.Sub(start)
	}

	eject()
	if d := ejectedFor(); d != 30*time.Second {
		t.Errorf("first ejection lasted %v, want 30s", d)
	}
	eject() // right away: backoff 2
	if d := ejectedFor(); d != 60*time.Second {
		t.Errorf("second ejection lasted %v, want 60s", d)
	}
	if st := h.State(); st.Ejections != 2 || st.Backoff != 2 {
		t.Errorf("state %+v", st)
	}
	// Healthy ticks at least one interval after un-ejection decrement the
	// backoff: after 10s → 1, 20s → 0.
	f.tick(10 * time.Second)
	if st := h.State(); st.Backoff != 1 {
		t.Errorf("backoff after one healthy interval: %d, want 1", st.Backoff)
	}
	f.tick(10 * time.Second)
	if st := h.State(); st.Backoff != 0 {
		t.Errorf("backoff after two healthy intervals: %d, want 0", st.Backoff)
	}
	eject()
	if d := ejectedFor(); d != 30*time.Second {
		t.Errorf("ejection after recovery lasted %v, want 30s", d)
	}

	// The cap: base 30s, max 60s.
	cfg.MaxEjectionTime = 60 * time.Second
	f = newFixture(t, cfg, manyHosts, nil)
	h = f.hosts[0]
	var got []time.Duration
	for range 4 {
		eject()
		got = append(got, ejectedFor())
	}
	want := []time.Duration{30 * time.Second, 60 * time.Second, 60 * time.Second, 60 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("capped ejection times %v, want %v", got, want)
	}
}

// TestMaxEjectionPercent: ejections stop at max_ejection_percent of all
// hosts; always_eject_one_host allows the first one anyway.
func TestMaxEjectionPercent(t *testing.T) {
	cases := []struct {
		name    string
		hosts   int
		percent uint32
		always  bool
		want    int // ejected after all hosts fail
	}{
		{"10% of 20", 20, 10, false, 2},
		{"10% of 3 ejects none", 3, 10, false, 0},
		{"10% of 3 with always_eject_one_host", 3, 10, true, 1},
		{"50% of 4", 4, 50, false, 2},
		{"100% of 4", 4, 100, false, 4},
		{"0% with always_eject_one_host", 4, 0, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := outlier.DefaultConfig()
			cfg.MaxEjectionPercent = tc.percent
			cfg.AlwaysEjectOneHost = tc.always
			f := newFixture(t, cfg, tc.hosts, nil)
			// 500s: a run of 502s would also be detected as gateway
			// failures, and those overflow too (Envoy checks the limit
			// before the enforcing percentage).
			for _, h := range f.hosts {
				f.put(h, status(500), 5)
			}
			ejected := 0
			for _, h := range f.hosts {
				if h.Ejected() {
					ejected++
				}
			}
			if ejected != tc.want {
				t.Errorf("%d ejected, want %d", ejected, tc.want)
			}
			s := f.d.Stats()
			if s.Active != tc.want || s.Overflow != uint64(tc.hosts-tc.want) {
				t.Errorf("stats active %d overflow %d", s.Active, s.Overflow)
			}
			// A refused host is detected again by its next run of errors.
			if tc.want < tc.hosts {
				last := f.hosts[tc.hosts-1]
				f.put(last, status(500), 5)
				if s2 := f.d.Stats(); s2.Overflow != s.Overflow+1 {
					t.Errorf("second run of errors: overflow %d, want %d", s2.Overflow, s.Overflow+1)
				}
			}
		})
	}
}

func TestGatewayFailures(t *testing.T) {
	// Envoy enforces gateway failures at 0% by default: detected only.
	f := newFixture(t, outlier.DefaultConfig(), manyHosts, nil)
	h := f.hosts[0]
	f.put(h, status(502), 4)
	f.put(h, status(504), 1) // 5th gateway error and 5th 5xx
	if !h.Ejected() || h.State().LastType != outlier.Consecutive5xx {
		t.Errorf("want a 5xx ejection, got %+v", h.State())
	}
	if s := f.d.Stats(); s.Detected[outlier.ConsecutiveGatewayFailure] != 1 || s.Enforced[outlier.ConsecutiveGatewayFailure] != 0 {
		t.Errorf("stats %+v", s)
	}

	// Istio's consecutiveGatewayErrors: gateway only, enforced, 5xx off.
	cfg := outlier.DefaultConfig()
	cfg.ConsecutiveGatewayFailure = outlier.Rule{Threshold: 3, Enforcing: 100}
	cfg.Consecutive5xx.Enforcing = 0
	f = newFixture(t, cfg, manyHosts, nil)
	h = f.hosts[0]
	f.put(h, status(503), 2)
	f.put(h, status(500), 1) // a 500 breaks the gateway run
	f.put(h, status(503), 2)
	if h.Ejected() {
		t.Fatal("ejected although the gateway run was broken")
	}
	f.put(h, status(504), 1)
	if !h.Ejected() || h.State().LastType != outlier.ConsecutiveGatewayFailure {
		t.Errorf("want a gateway ejection, got %+v", h.State())
	}
}

func TestLocalOriginErrors(t *testing.T) {
	connectFailed := outlier.Result{Event: outlier.LocalOriginConnectFailed}
	t.Run("not split: connect failures are 503s", func(t *testing.T) {
		f := newFixture(t, outlier.DefaultConfig(), manyHosts, nil)
		h := f.hosts[0]
		f.put(h, connectFailed, 3)
		f.put(h, outlier.Result{Event: outlier.LocalOriginConnectSuccess}, 1) // ignored
		f.put(h, outlier.Result{Event: outlier.LocalOriginTimeout, Status: 504}, 2)
		if !h.Ejected() || h.State().LastType != outlier.Consecutive5xx {
			t.Errorf("state %+v", h.State())
		}
	})
	t.Run("split: own counter", func(t *testing.T) {
		cfg := outlier.DefaultConfig()
		cfg.SplitExternalLocalOriginErrors = true
		f := newFixture(t, cfg, manyHosts, nil)
		h := f.hosts[0]
		f.put(h, connectFailed, 4)
		f.put(h, status(500), 4) // external errors do not reset local ones
		f.put(h, outlier.Result{Event: outlier.LocalOriginTimeout, Status: 504}, 1)
		if !h.Ejected() || h.State().LastType != outlier.ConsecutiveLocalOriginFailure {
			t.Fatalf("state %+v", h.State())
		}
		g := f.hosts[1]
		f.put(g, connectFailed, 4)
		f.put(g, outlier.Result{Event: outlier.LocalOriginConnectSuccess}, 1) // resets
		f.put(g, connectFailed, 4)
		if g.Ejected() {
			t.Error("connect success did not reset the local-origin run")
		}
	})
}

func TestEnforcingPercentage(t *testing.T) {
	cfg := outlier.DefaultConfig()
	cfg.Consecutive5xx.Enforcing = 30
	var dice uint64
	f := newFixture(t, cfg, manyHosts, func() uint64 { return dice })
	dice = 30 // 30 % 100 < 30 is false: not enforced
	f.put(f.hosts[0], status(500), 5)
	dice = 29
	f.put(f.hosts[1], status(500), 5)
	if f.hosts[0].Ejected() || !f.hosts[1].Ejected() {
		t.Errorf("enforcement: host0 %v host1 %v", f.hosts[0].Ejected(), f.hosts[1].Ejected())
	}
	if s := f.d.Stats(); s.Detected[outlier.Consecutive5xx] != 2 || s.Enforced[outlier.Consecutive5xx] != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestJitter(t *testing.T) {
	cfg := outlier.DefaultConfig()
	cfg.MaxEjectionTimeJitter = 5 * time.Second
	f := newFixture(t, cfg, manyHosts, func() uint64 { return 3000 }) // 3000 % 5001 ms
	h := f.hosts[0]
	f.put(h, status(500), 5)
	f.tick(32 * time.Second)
	if !h.Ejected() {
		t.Error("un-ejected before base + jitter")
	}
	f.tick(time.Second)
	if h.Ejected() {
		t.Error("still ejected after base + jitter")
	}
}

func TestSuccessRate(t *testing.T) {
	cfg := outlier.DefaultConfig() // 5 hosts × 100 requests, stdev factor 1.9
	cfg.Consecutive5xx.Enforcing = 0
	cfg.MaxEjectionPercent = 100
	f := newFixture(t, cfg, 10, nil)
	for i, h := range f.hosts {
		for j := range 200 {
			code := 200
			if i == 3 && j%2 == 0 { // 50% errors, never 5 in a row
				code = 503
			}
			h.Put(status(code))
		}
	}
	f.tick(10 * time.Second)
	for i, h := range f.hosts {
		if h.Ejected() != (i == 3) {
			t.Errorf("host %d ejected=%v", i, h.Ejected())
		}
	}
	if st := f.hosts[3].State(); st.LastType != outlier.SuccessRateExternal {
		t.Errorf("state %+v", st)
	}
	mean, threshold := f.d.SuccessRateStats(false)
	// Nine hosts at 100%, one at 50%: stdev 15, threshold 95 - 1.9×15.
	if mean != 95 || threshold != 66.5 {
		t.Errorf("mean %v threshold %v", mean, threshold)
	}
	if st := f.hosts[0].State(); st.SuccessRate != 100 {
		t.Errorf("success rate %v", st.SuccessRate)
	}
	// The next interval saw no traffic: nothing is computed.
	f.tick(10 * time.Second)
	if mean, _ := f.d.SuccessRateStats(false); mean != -1 {
		t.Errorf("mean %v without traffic", mean)
	}
}

func TestFailurePercentage(t *testing.T) {
	cfg := outlier.DefaultConfig()
	cfg.Consecutive5xx.Enforcing = 0
	cfg.SuccessRate.Enforcing = 0
	cfg.FailurePercentage.Enforcing = 100
	cfg.MaxEjectionPercent = 100
	f := newFixture(t, cfg, 5, nil)
	for i, h := range f.hosts {
		for j := range 60 {
			code := 200
			if i == 2 && j%10 != 0 { // 90% errors
				code = 500
			}
			h.Put(status(code))
		}
	}
	f.tick(10 * time.Second)
	for i, h := range f.hosts {
		if h.Ejected() != (i == 2) {
			t.Errorf("host %d ejected=%v", i, h.Ejected())
		}
	}
}

func TestRemove(t *testing.T) {
	f := newFixture(t, outlier.DefaultConfig(), manyHosts, nil)
	h := f.hosts[0]
	f.put(h, status(500), 5)
	f.d.Remove(h)
	f.d.Remove(h) // twice is harmless
	if s := f.d.Stats(); s.Active != 0 {
		t.Errorf("active %d after removing the ejected host", s.Active)
	}
	g := f.hosts[1]
	f.d.Remove(g)
	f.put(g, status(500), 10) // removed: ignored
	if g.Ejected() {
		t.Error("removed host ejected")
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := outlier.DefaultConfig()
	cfg.MaxEjectionTime = time.Second
	if _, err := outlier.New(cfg, outlier.Options{}); err == nil ||
		err.Error() != "outlier detector's max_ejection_time cannot be smaller than base_ejection_time" {
		t.Errorf("err %v", err)
	}
	cfg = outlier.DefaultConfig()
	cfg.Consecutive5xx.Enforcing = 101
	if _, err := outlier.New(cfg, outlier.Options{}); err == nil {
		t.Error("enforcing 101% accepted")
	}
}

// TestRun: the ticker un-ejects on time (fake time with synctest).
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, err := outlier.New(outlier.DefaultConfig(), outlier.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var hosts []*outlier.Monitor
		for i := range manyHosts {
			hosts = append(hosts, d.Add(fmt.Sprint(i)))
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()

		for range 5 {
			hosts[0].Put(status(500))
		}
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if !hosts[0].Ejected() {
			t.Fatal("un-ejected before 30s")
		}
		time.Sleep(10 * time.Second) // tick at 30s
		synctest.Wait()
		if hosts[0].Ejected() {
			t.Fatal("still ejected after 30s")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestConcurrentPut: results from many goroutines while ticking (-race).
func TestConcurrentPut(t *testing.T) {
	cfg := outlier.DefaultConfig()
	cfg.MaxEjectionPercent = 50
	var mu sync.Mutex
	changes := 0
	d, err := outlier.New(cfg, outlier.Options{OnChange: func(c []*outlier.Monitor) {
		mu.Lock()
		changes += len(c)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*outlier.Monitor
	for i := range 10 {
		hosts = append(hosts, d.Add(fmt.Sprint(i)))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				h := hosts[(g+i)%len(hosts)]
				code := 200
				if h == hosts[0] || i%3 != 0 { // host 0 always fails
					code = 503
				}
				h.Put(status(code))
				_ = h.Ejected()
			}
		})
	}
	wg.Go(func() {
		now := time.Now()
		for i := range 200 {
			d.Tick(now.Add(time.Duration(i) * time.Second))
			_ = hosts[i%10].State()
		}
	})
	wg.Wait()
	if s := d.Stats(); s.Active > 5 {
		t.Errorf("%d ejected, max is 50%% of 10", s.Active)
	}
	mu.Lock()
	defer mu.Unlock()
	if changes == 0 {
		t.Error("the always failing host was never ejected")
	}
}
