package outlier

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Options are the detector's collaborators; all are optional.
type Options struct {
	// Now is the clock read when a host is ejected (default time.Now).
	Now func() time.Time
	// Rand draws the enforcing_* dice and the ejection jitter (default
	// math/rand/v2). It must be safe for concurrent use.
	Rand func() uint64
	// OnChange is called with the monitors just ejected or un-ejected, once
	// per Put or Tick that changed any, on that goroutine and without the
	// detector's lock held. The cluster rebuilds its load balancer from it
	// (at its next pick).
	OnChange func(changed []*Monitor)
}

// Detector is the outlier detector of one cluster.
type Detector struct {
	cfg      Config
	now      func() time.Time
	rand     func() uint64
	onChange func([]*Monitor)

	mu       sync.Mutex
	monitors []*Monitor
	active   int // ejected monitors
	stats    Stats
	// Last success-rate statistics, per kind, -1 when not computed.
	srMean, srThreshold [2]float64
}

// Stats are the detector's counters, Envoy's outlier_detection.* stats.
type Stats struct {
	// Active is the number of hosts ejected now (ejections_active).
	Active int
	// Overflow counts ejections refused by max_ejection_percent.
	Overflow uint64
	// EnforcedTotal counts ejections carried out.
	EnforcedTotal uint64
	// Enforced and Detected count per ejection type; detected ejections
	// include those the enforcing_* percentage or the overflow refused.
	Enforced [numTypes]uint64
	Detected [numTypes]uint64
}

// New returns a detector for cfg, which is validated.
func New(cfg Config, opts Options) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg, now: opts.Now, rand: opts.Rand, onChange: opts.OnChange}
	if d.now == nil {
		d.now = time.Now
	}
	if d.rand == nil {
		d.rand = rand.Uint64
	}
	d.srMean = [2]float64{-1, -1}
	d.srThreshold = [2]float64{-1, -1}
	return d, nil
}

// Config returns the detector's configuration.
func (d *Detector) Config() Config { return d.cfg }

// Add starts monitoring a new host. label names it in State.
func (d *Detector) Add(label string) *Monitor {
	m := &Monitor{d: d, label: label, successRate: [2]float64{-1, -1}}
	d.mu.Lock()
	m.index = len(d.monitors)
	d.monitors = append(d.monitors, m)
	d.mu.Unlock()
	return m
}

// Remove stops monitoring a host that left the cluster. Its ejection, if
// any, no longer counts against max_ejection_percent; later Puts on it
// change nothing.
func (d *Detector) Remove(m *Monitor) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m.d != d || m.index < 0 {
		return
	}
	if m.ejected.Load() {
		d.active--
	}
	last := len(d.monitors) - 1
	d.monitors[m.index] = d.monitors[last]
	d.monitors[m.index].index = m.index
	d.monitors[last] = nil
	d.monitors = d.monitors[:last]
	m.index = -1
}

// Stats returns a snapshot of the detector's counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Active = d.active
	return s
}

// SuccessRateStats returns the cluster's mean success rate and ejection
// threshold of the last interval for external (localOrigin false) or
// local-origin results; both are -1 when not computed.
func (d *Detector) SuccessRateStats(localOriginResults bool) (mean, threshold float64) {
	kind := external
	if localOriginResults {
		kind = localOrigin
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.srMean[kind], d.srThreshold[kind]
}

// Run calls Tick every interval until ctx is done. The cluster owns the
// goroutine that runs it.
func (d *Detector) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.Tick(d.now())
		}
	}
}

// Tick is one interval sweep at now (Envoy's onIntervalTimer): un-eject the
// hosts whose time is up, run success-rate and failure-percentage
// detection over the interval that ended, and decrement the backoff of
// hosts that stayed healthy for a whole interval since their last
// un-ejection.
func (d *Detector) Tick(now time.Time) {
	var changed []*Monitor
	d.mu.Lock()
	for _, m := range d.monitors {
		if m.ejected.Load() && d.ejectionOver(m, now) {
			d.uneject(m, now)
			changed = append(changed, m)
		}
		m.sr[external].swap()
		m.sr[localOrigin].swap()
		m.successRate = [2]float64{-1, -1}
	}
	changed = d.processSuccessRate(external, changed)
	changed = d.processSuccessRate(localOrigin, changed)
	for _, m := range d.monitors {
		if !m.ejected.Load() && !m.lastUnejection.IsZero() &&
			now.Sub(m.lastUnejection) >= d.cfg.Interval && m.backoff > 0 {
			m.backoff--
		}
	}
	d.mu.Unlock()
	d.notify(changed)
}

// ejectionOver: min(base × backoff, max) + jitter has passed since the
// ejection.
func (d *Detector) ejectionOver(m *Monitor, now time.Time) bool {
	ejection := min(d.cfg.BaseEjectionTime*time.Duration(m.backoff), d.cfg.MaxEjectionTime) + m.jitter
	return ejection <= now.Sub(m.lastEjection)
}

// onConsecutive handles a consecutive-error threshold reached by a Put
// (Envoy's onConsecutiveErrorWorker).
func (d *Detector) onConsecutive(m *Monitor, t Type) {
	d.mu.Lock()
	if m.index < 0 || m.ejected.Load() {
		d.mu.Unlock()
		return
	}
	d.stats.Detected[t]++
	changed := d.eject(m, t, nil)
	// Reset the counter that fired, so that a new run of errors can be
	// detected even without a success in between.
	m.resetCounter(t)
	d.mu.Unlock()
	d.notify(changed)
}

// eject is Envoy's ejectHost. Called under d.mu; returns changed with m
// appended when m was ejected.
func (d *Detector) eject(m *Monitor, t Type, changed []*Monitor) []*Monitor {
	maxPercent := min(d.cfg.MaxEjectionPercent, 100)
	ejectedPercent := 100 * float64(d.active+1) / float64(len(d.monitors))
	allowed := ejectedPercent <= float64(maxPercent) || (d.cfg.AlwaysEjectOneHost && d.active == 0)
	if !allowed {
		d.stats.Overflow++
		return changed
	}
	if !d.enforce(t) {
		return changed
	}
	d.active++
	d.stats.EnforcedTotal++
	d.stats.Enforced[t]++
	m.ejected.Store(true)
	m.ejections++
	m.lastType = t
	m.lastEjection = d.now()
	if j := d.cfg.MaxEjectionTimeJitter.Milliseconds(); j > 0 {
		m.jitter = time.Duration(d.rand()%uint64(j+1)) * time.Millisecond
	} else {
		m.jitter = 0
	}
	base := d.cfg.BaseEjectionTime
	if base*time.Duration(m.backoff) < d.cfg.MaxEjectionTime+base {
		m.backoff++
	}
	return append(changed, m)
}

// enforce rolls the enforcing_* dice of t.
func (d *Detector) enforce(t Type) bool {
	var percent uint32
	switch t {
	case Consecutive5xx:
		percent = d.cfg.Consecutive5xx.Enforcing
	case ConsecutiveGatewayFailure:
		percent = d.cfg.ConsecutiveGatewayFailure.Enforcing
	case ConsecutiveLocalOriginFailure:
		percent = d.cfg.ConsecutiveLocalOriginFailure.Enforcing
	case SuccessRateExternal:
		percent = d.cfg.SuccessRate.Enforcing
	case SuccessRateLocalOrigin:
		percent = d.cfg.SuccessRate.EnforcingLocalOrigin
	case FailurePercentageExternal:
		percent = d.cfg.FailurePercentage.Enforcing
	case FailurePercentageLocalOrigin:
		percent = d.cfg.FailurePercentage.EnforcingLocalOrigin
	}
	switch percent {
	case 0:
		return false
	case 100:
		return true
	}
	return d.rand()%100 < uint64(percent)
}

// uneject returns m to service. Called under d.mu.
func (d *Detector) uneject(m *Monitor, now time.Time) {
	d.active--
	m.ejected.Store(false)
	m.resetConsecutive()
	m.lastUnejection = now
}

func (d *Detector) notify(changed []*Monitor) {
	if d.onChange != nil && len(changed) > 0 {
		d.onChange(changed)
	}
}
