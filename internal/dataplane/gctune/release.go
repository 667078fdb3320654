package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of ReleaseConfig.
const (
	DefaultReleaseMinAlloc    = 8 << 20
	DefaultReleaseMinExcess   = 4 << 20
	DefaultReleaseMinPercent  = 10
	DefaultReleaseQuiet       = time.Second
	DefaultReleaseMaxDelay    = 10 * time.Second
	DefaultReleaseMinInterval = 30 * time.Second
)

// ReleaseConfig shapes when a Releaser returns freed heap memory to the
// operating system after configuration changes. Zero fields take the
// defaults.
type ReleaseConfig struct {
	// MinAlloc is what makes a change large: the configuration changes
	// since the last check allocated at least this many bytes (decoded
	// messages, compiled clusters). Smaller changes are never checked, so
	// endpoint churn costs no collection.
	MinAlloc uint64
	// MinExcess and MinPercent: after a large change the check collects,
	// and memory is returned when the heap the runtime holds then exceeds
	// the (fresh) heap goal by at least MinExcess bytes and
	// by at least MinPercent of the goal. The runtime's own background
	// scavenger keeps about 10 % above the goal and gets there slowly;
	// below these thresholds forcing it is not worth a collection.
	MinExcess  uint64
	MinPercent int
	// Quiet is how long configuration changes must pause before the
	// check (the start-up burst of CDS, EDS, LDS and RDS is one check),
	// MaxDelay the longest a check waits for such a pause after the first
	// change it covers (endpoint churn never pauses for long).
	Quiet, MaxDelay time.Duration
	// MinInterval is the shortest time between two releases: each is a
	// forced collection, and churn in a large mesh must not turn into one
	// per push.
	MinInterval time.Duration
	// Settled, if set, runs at the end of the first check (the start-up
	// configuration has been applied and has settled) and of every later
	// check that followed a large change, on the check's goroutine. The
	// sidecar releases the executable pages that start-up, or decoding
	// and compiling a large push, mapped (package execpages).
	Settled func()
}

func (c ReleaseConfig) withDefaults() ReleaseConfig {
	if c.MinAlloc == 0 {
		c.MinAlloc = DefaultReleaseMinAlloc
	}
	if c.MinExcess == 0 {
		c.MinExcess = DefaultReleaseMinExcess
	}
	if c.MinPercent <= 0 {
		c.MinPercent = DefaultReleaseMinPercent
	}
	if c.Quiet <= 0 {
		c.Quiet = DefaultReleaseQuiet
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = DefaultReleaseMaxDelay
	}
	if c.MaxDelay < c.Quiet {
		c.MaxDelay = c.Quiet
	}
	if c.MinInterval <= 0 {
		c.MinInterval = DefaultReleaseMinInterval
	}
	return c
}

// Heap is what the release decision reads from runtime/metrics.
type Heap struct {
	// Held is the heap memory the runtime holds and has not returned to
	// the OS: /memory/classes/heap/{objects,unused,free}:bytes.
	Held uint64
	// Goal is the heap size at which the next collection starts,
	// /gc/heap/goal:bytes: what the steady state needs.
	Goal uint64
}

// Large reports whether changes that allocated this many bytes are worth
// a check.
func (c ReleaseConfig) Large(allocated uint64) bool {
	return allocated >= c.withDefaults().MinAlloc
}

// Excessive reports whether h holds enough memory above its goal to be
// worth returning: Held − Goal ≥ MinExcess and ≥ MinPercent of Goal.
func (c ReleaseConfig) Excessive(h Heap) bool {
	c = c.withDefaults()
	if h.Held <= h.Goal {
		return false
	}
	excess := h.Held - h.Goal
	return excess >= c.MinExcess && excess*100 >= h.Goal*uint64(c.MinPercent)
}

// Due is when to check after a configuration change at now: once
// changes have paused for Quiet, but no later than MaxDelay after first
// (the oldest change not yet checked), and never before MinInterval
// after last (the last release; zero for none).
func (c ReleaseConfig) Due(now, first, last time.Time) time.Time {
	c = c.withDefaults()
	due := now.Add(c.Quiet)
	if limit := first.Add(c.MaxDelay); due.After(limit) {
		due = limit
	}
	if !last.IsZero() {
		if early := last.Add(c.MinInterval); due.Before(early) {
			due = early
		}
	}
	return due
}

// Releaser returns the memory a large configuration change freed to the
// OS, off the configuration path and rate-limited:
//
//	done := Track()  … apply …  done()   (bytes allocated between the two add up)
//	   │ schedules, per Due
//	   ▼
//	check (timer goroutine): Large(allocated)? ─no─► nothing (no collection)
//	   │ yes: runtime.GC, ReadHeap
//	   ▼
//	Excessive(heap)? ─yes─► debug.FreeOSMemory
//
// Stop cancels a pending check. The zero value is not usable: use
// NewReleaser.
type Releaser struct {
	cfg ReleaseConfig
	now func() time.Time

	mu        sync.Mutex
	timer     *time.Timer
	allocated uint64    // by the changes not yet checked
	first     time.Time // oldest change not yet checked; zero when none
	last      time.Time // last release
	stopped   bool

	checks   atomic.Uint64
	releases atomic.Uint64
	first1   atomic.Bool // the first check has started
}

// NewReleaser returns a Releaser; it starts nothing until a change is
// tracked.
func NewReleaser(cfg ReleaseConfig) *Releaser {
	return &Releaser{cfg: cfg.withDefaults(), now: time.Now}
}

// Track brackets a configuration change: call it before applying and the
// function it returns after. The bytes allocated in between count towards
// Large, and the check is (re)scheduled. Neither call collects.
func (r *Releaser) Track() (done func()) {
	before := allocated()
	return func() {
		r.applied(allocated() - before)
	}
}

func (r *Releaser) applied(bytes uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	now := r.now()
	if r.first.IsZero() {
		r.first = now
	}
	r.allocated += bytes
	wait := r.cfg.Due(now, r.first, r.last).Sub(now)
	if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.check)
		return
	}
	r.timer.Reset(wait)
}

// check runs on the timer's goroutine.
func (r *Releaser) check() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	bytes := r.allocated
	r.allocated, r.first = 0, time.Time{}
	r.mu.Unlock()
	defer r.checks.Add(1)
	first := r.first1.CompareAndSwap(false, true)
	large := r.cfg.Large(bytes)
	if f := r.cfg.Settled; f != nil && (first || large) {
		defer f()
	}
	if !large {
		return
	}
	// The heap goal of the last collection may date from the middle of
	// the change, when its decoded messages were live.
	runtime.GC()
	if !r.cfg.Excessive(ReadHeap()) {
		return
	}
	r.mu.Lock()
	r.last = r.now()
	r.mu.Unlock()
	debug.FreeOSMemory()
	r.releases.Add(1)
}

// Stop cancels a pending check; later changes schedule none.
func (r *Releaser) Stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
}

// Checks is how many checks have run; Releases how many of them
// returned memory.
func (r *Releaser) Checks() uint64   { return r.checks.Load() }
func (r *Releaser) Releases() uint64 { return r.releases.Load() }

// allocated is the bytes the program has allocated so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		return s[0].Value.Uint64()
	}
	return 0
}

// ReadHeap reads Heap from runtime/metrics.
func ReadHeap() Heap {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/goal:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return Heap{Held: v(0) + v(1) + v(2), Goal: v(3)}
}
