package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Defaults of Config.
const (
	DefaultHeadroom   = 8 << 20
	DefaultMinPercent = 25
	DefaultMaxPercent = 400
	// DefaultMinGoal is the heap goal floor a sidecar's flag defaults
	// to: just under the goal with 1,000 services (live ≈ 11.5 MiB +
	// Headroom), the configuration the memory budget is set for, so that
	// it never raises that goal.
	DefaultMinGoal = 18 << 20
)

// Config shapes the heap goal. Zero fields take the defaults.
type Config struct {
	// Headroom is the garbage the heap may accumulate above the live heap
	// between collections, in bytes.
	Headroom uint64
	// MinPercent and MaxPercent clamp the GC percentage: the floor keeps
	// a very large live heap from collecting continuously, the ceiling
	// keeps a tiny one from growing the heap many times over.
	MinPercent, MaxPercent int
	// MinGoal is the lowest heap goal, in bytes (0: none). A small
	// configuration's live heap plus Headroom is well below what a large
	// one needs; the floor lets it spend that budget on fewer
	// collections (the collector's cost per request is its cost per
	// cycle, which grows with the live heap, times the cycles, which
	// fall as the garbage allowed per cycle grows). It is not clamped by
	// MaxPercent.
	MinGoal uint64
}

func (c Config) withDefaults() Config {
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if c.MinPercent <= 0 {
		c.MinPercent = DefaultMinPercent
	}
	if c.MaxPercent <= 0 {
		c.MaxPercent = DefaultMaxPercent
	}
	if c.MaxPercent < c.MinPercent {
		c.MaxPercent = c.MinPercent
	}
	return c
}

// Percent is the GC percentage that puts the heap goal at live+Headroom,
// clamped to [MinPercent, MaxPercent], or at MinGoal when that is
// higher. live 0 (nothing measured yet: the runtime's first goal is a
// few MiB times the percentage) gives MaxPercent.
func (c Config) Percent(live uint64) int {
	c = c.withDefaults()
	if live == 0 {
		return c.MaxPercent
	}
	p := min(c.Headroom*100/live, uint64(c.MaxPercent))
	if c.MinGoal > live {
		p = max(p, (c.MinGoal-live)*100/live)
	}
	if p < uint64(c.MinPercent) {
		return c.MinPercent
	}
	return int(min(p, math.MaxInt32))
}

// Tuner adjusts the GC percentage after every collection. Stop ends it.
type Tuner struct {
	cfg     Config
	stopped atomic.Bool
	runs    atomic.Uint64
	percent atomic.Int64
	sample  []metrics.Sample // used on the finalizer goroutine only
}

// Start installs a Tuner unless the GOGC environment variable is set
// (getenv is os.Getenv in production), in which case it returns nil: the
// operator chose the collector's pace.
func Start(cfg Config, getenv func(string) string) *Tuner {
	if getenv("GOGC") != "" {
		return nil
	}
	t := &Tuner{cfg: cfg.withDefaults(), sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.percent.Store(-1)
	t.tune()
	t.arm()
	return t
}

// sentinel is the object whose finalizer runs after each collection. It
// must be heap allocated and big enough not to be a tiny-allocator
// object (those are batched and freed together, late).
type sentinel struct {
	t *Tuner
	_ [16]byte
}

func (t *Tuner) arm() {
	s := &sentinel{t: t}
	runtime.SetFinalizer(s, func(s *sentinel) {
		if s.t.stopped.Load() {
			return
		}
		s.t.tune()
		s.t.arm()
	})
}

// tune reads the live heap and sets the percentage when it moved by more
// than a tenth (SetGCPercent is cheap, but there is no reason to churn).
func (t *Tuner) tune() {
	t.runs.Add(1)
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := int64(t.cfg.Percent(live))
	old := t.percent.Load()
	if old > 0 && p*10 >= old*9 && p*10 <= old*11 {
		return
	}
	t.percent.Store(p)
	debug.SetGCPercent(int(p))
}

// Percent is the GC percentage the Tuner set last (-1 before any).
func (t *Tuner) Percent() int { return int(t.percent.Load()) }

// Runs is how many times the Tuner has run (once at Start, then once per
// GC cycle).
func (t *Tuner) Runs() uint64 { return t.runs.Load() }

// Stop ends the tuning and restores Go's default percentage (100). The
// sentinel of the current cycle is dropped at the next collection.
func (t *Tuner) Stop() {
	if t == nil || t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(100)
}
