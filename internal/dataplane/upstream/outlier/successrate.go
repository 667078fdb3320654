package outlier

import (
	"math"
	"sync/atomic"
)

// Indexes of the two success-rate accumulators of a monitor.
const (
	external    = 0
	localOrigin = 1
)

// accumulator counts requests in two buckets: Put writes the current one,
// the detector reads the other, which holds the previous interval, and
// swaps them on every tick (Envoy's SuccessRateAccumulator). A write racing
// with a swap may land in either interval; Envoy has the same race.
type accumulator struct {
	buckets [2]bucket
	current atomic.Uint32
}

type bucket struct {
	success atomic.Uint64
	total   atomic.Uint64
}

func (a *accumulator) add(success bool) {
	b := &a.buckets[a.current.Load()]
	b.total.Add(1)
	if success {
		b.success.Add(1)
	}
}

// swap empties the backup bucket and makes it current. Called under the
// detector's mutex.
func (a *accumulator) swap() {
	next := 1 - a.current.Load()
	a.buckets[next].success.Store(0)
	a.buckets[next].total.Store(0)
	a.current.Store(next)
}

// rate returns the success percentage and volume of the previous interval;
// ok is false when it saw no request.
func (a *accumulator) rate() (rate float64, volume uint64, ok bool) {
	b := &a.buckets[1-a.current.Load()]
	total := b.total.Load()
	if total == 0 {
		return 0, 0, false
	}
	return float64(b.success.Load()) * 100 / float64(total), total, true
}

type hostRate struct {
	m    *Monitor
	rate float64
}

// processSuccessRate is Envoy's processSuccessRateEjections for one kind
// of result (external or local origin). Called under d.mu.
func (d *Detector) processSuccessRate(kind int, changed []*Monitor) []*Monitor {
	sr, fp := d.cfg.SuccessRate, d.cfg.FailurePercentage
	d.srMean[kind], d.srThreshold[kind] = -1, -1
	n := uint32(len(d.monitors))
	if n < sr.MinimumHosts && n < fp.MinimumHosts {
		return changed
	}
	var validSR, validFP []hostRate
	var sum float64
	for _, m := range d.monitors {
		if m.ejected.Load() {
			continue
		}
		rate, volume, ok := m.sr[kind].rate()
		if !ok {
			continue
		}
		if volume >= uint64(min(sr.RequestVolume, fp.RequestVolume)) {
			m.successRate[kind] = rate
		}
		if volume >= uint64(sr.RequestVolume) {
			validSR = append(validSR, hostRate{m, rate})
			sum += rate
		}
		if volume >= uint64(fp.RequestVolume) {
			validFP = append(validFP, hostRate{m, rate})
		}
	}
	if len(validSR) > 0 && uint32(len(validSR)) >= sr.MinimumHosts {
		mean := sum / float64(len(validSR))
		var variance float64
		for _, h := range validSR {
			variance += (h.rate - mean) * (h.rate - mean)
		}
		variance /= float64(len(validSR))
		threshold := mean - float64(sr.StdevFactor)/1000*math.Sqrt(variance)
		d.srMean[kind], d.srThreshold[kind] = mean, threshold
		t := SuccessRateExternal
		if kind == localOrigin {
			t = SuccessRateLocalOrigin
		}
		for _, h := range validSR {
			if h.rate < threshold && !h.m.ejected.Load() {
				d.stats.Detected[t]++
				changed = d.eject(h.m, t, changed)
			}
		}
	}
	if len(validFP) > 0 && uint32(len(validFP)) >= fp.MinimumHosts {
		t := FailurePercentageExternal
		if kind == localOrigin {
			t = FailurePercentageLocalOrigin
		}
		for _, h := range validFP {
			if 100-h.rate >= float64(fp.Threshold) && !h.m.ejected.Load() {
				d.stats.Detected[t]++
				changed = d.eject(h.m, t, changed)
			}
		}
	}
	return changed
}
