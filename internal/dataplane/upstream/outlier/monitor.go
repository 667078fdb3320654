package outlier

import (
	"sync/atomic"
	"time"
)

// Monitor watches one host. Put is called by request goroutines; the rest
// of its state belongs to the Detector and is guarded by the detector's
// mutex.
type Monitor struct {
	d *Detector
	// Label names the host in State and logs (its address).
	label string

	consecutive5xx     atomic.Uint32
	consecutiveGateway atomic.Uint32
	consecutiveLocal   atomic.Uint32
	ejected            atomic.Bool
	// sr holds the success-rate buckets: [external, local origin].
	sr [2]accumulator

	// Guarded by d.mu.
	index          int // position in d.monitors; -1 once removed
	ejections      uint32
	backoff        uint32
	lastEjection   time.Time
	lastUnejection time.Time
	jitter         time.Duration
	lastType       Type
	successRate    [2]float64 // last computed, -1 when unknown
}

// Label returns the label given to Add.
func (m *Monitor) Label() string { return m.label }

// Ejected reports whether the host is ejected now.
func (m *Monitor) Ejected() bool { return m.ejected.Load() }

// Put records the result of one attempt on the host. It is lock-free
// unless a consecutive-error threshold is reached, when the detector
// decides on an ejection (and may call OnChange) before Put returns.
func (m *Monitor) Put(r Result) {
	if m.d.cfg.SplitExternalLocalOriginErrors {
		m.putSplit(r)
		return
	}
	if r.Event == NoEvent || r.Status != 0 {
		if r.Status != 0 {
			m.putStatus(r.Status)
		}
		return
	}
	if status, ok := eventStatus(r.Event); ok {
		m.putStatus(status)
	}
}

// putSplit is Envoy's putResultWithLocalExternalSplit: local-origin events
// have their own counter; HTTP statuses go to the external ones.
func (m *Monitor) putSplit(r Result) {
	switch r.Event {
	case NoEvent:
		if r.Status != 0 {
			m.putStatus(r.Status)
		}
	case LocalOriginConnectSuccess, LocalOriginConnectSuccessFinal:
		m.localOriginSuccess()
	case LocalOriginTimeout, LocalOriginConnectFailed:
		m.localOriginFailure()
	case ExtOriginRequestFailed:
		m.putStatus(503)
	case ExtOriginRequestSuccess:
		m.putStatus(200)
		m.localOriginSuccess()
	}
}

// putStatus is Envoy's putHttpResponseCode. A counter triggers detection
// when it reaches its threshold exactly, so one run of errors detects once.
func (m *Monitor) putStatus(code int) {
	cfg := &m.d.cfg
	if !is5xx(code) {
		m.sr[external].add(true)
		m.consecutive5xx.Store(0)
		m.consecutiveGateway.Store(0)
		return
	}
	m.sr[external].add(false)
	if isGatewayError(code) {
		if m.consecutiveGateway.Add(1) == cfg.ConsecutiveGatewayFailure.Threshold {
			m.d.onConsecutive(m, ConsecutiveGatewayFailure)
		}
	} else {
		m.consecutiveGateway.Store(0)
	}
	if m.consecutive5xx.Add(1) == cfg.Consecutive5xx.Threshold {
		m.d.onConsecutive(m, Consecutive5xx)
	}
}

func (m *Monitor) localOriginFailure() {
	m.sr[localOrigin].add(false)
	if m.consecutiveLocal.Add(1) == m.d.cfg.ConsecutiveLocalOriginFailure.Threshold {
		m.d.onConsecutive(m, ConsecutiveLocalOriginFailure)
	}
}

func (m *Monitor) localOriginSuccess() {
	m.sr[localOrigin].add(true)
	m.consecutiveLocal.Store(0)
}

// State is a monitor's state for the admin interface.
type State struct {
	Label   string
	Ejected bool
	// Ejections counts every ejection of the host so far.
	Ejections uint32
	// Backoff is the current multiplier of the base ejection time.
	Backoff uint32
	// LastEjection and LastUnejection are zero when it never happened.
	LastEjection   time.Time
	LastUnejection time.Time
	// LastType is the reason of the last ejection.
	LastType Type
	// SuccessRate and LocalOriginSuccessRate over the last interval, -1
	// when the host had too few requests.
	SuccessRate            float64
	LocalOriginSuccessRate float64
	Consecutive5xx         uint32
	ConsecutiveGateway     uint32
	ConsecutiveLocalOrigin uint32
}

// State returns a snapshot of the monitor.
func (m *Monitor) State() State {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	return State{
		Label:                  m.label,
		Ejected:                m.ejected.Load(),
		Ejections:              m.ejections,
		Backoff:                m.backoff,
		LastEjection:           m.lastEjection,
		LastUnejection:         m.lastUnejection,
		LastType:               m.lastType,
		SuccessRate:            m.successRate[external],
		LocalOriginSuccessRate: m.successRate[localOrigin],
		Consecutive5xx:         m.consecutive5xx.Load(),
		ConsecutiveGateway:     m.consecutiveGateway.Load(),
		ConsecutiveLocalOrigin: m.consecutiveLocal.Load(),
	}
}

func (m *Monitor) resetConsecutive() {
	m.consecutive5xx.Store(0)
	m.consecutiveGateway.Store(0)
	m.consecutiveLocal.Store(0)
}

func (m *Monitor) resetCounter(t Type) {
	switch t {
	case Consecutive5xx:
		m.consecutive5xx.Store(0)
	case ConsecutiveGatewayFailure:
		m.consecutiveGateway.Store(0)
	case ConsecutiveLocalOriginFailure:
		m.consecutiveLocal.Store(0)
	}
}
