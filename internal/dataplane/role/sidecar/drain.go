package sidecar

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// lifecycle is the sidecar's termination state, shared by Run, the admin
// endpoint and the readiness handlers.
type lifecycle struct {
	// draining is set once termination started: readiness fails
	// ("DRAINING") from then on.
	draining atomic.Bool
	// hcFailed is set by /healthcheck/fail and cleared by /healthcheck/ok.
	hcFailed atomic.Bool
	// stop is closed by Stop: Run ends at once.
	stop     chan struct{}
	stopOnce *sync.Once
}

func newLifecycle() lifecycle {
	return lifecycle{stop: make(chan struct{}), stopOnce: &sync.Once{}}
}

// Stop ends Run at once, without a drain period (POST /quitquitquit, or a
// second termination signal). It may be called from any goroutine, any
// number of times.
func (s *Sidecar) Stop() {
	s.life.stopOnce.Do(func() { close(s.life.stop) })
}

// readiness is "" when ready, else why not.
func (s *Sidecar) readiness() string {
	switch {
	case s.life.draining.Load():
		return "DRAINING"
	case s.life.hcFailed.Load():
		return "DRAINING: health checks failed (POST /healthcheck/ok to undo)"
	case !s.configured():
		return "not ready: waiting for configuration from the control plane"
	case s.id != nil && !s.id.Ready():
		return "not ready: waiting for the workload certificate from the CA (" + s.cfg.Identity.CAAddress + ")"
	}
	return ""
}

// terminate is Istio's graceful termination (pilot-agent on SIGTERM, then
// Envoy's /drain_listeners?inboundonly&graceful): readiness fails at once
// so that endpoints are taken out of load balancing; the inbound listeners
// keep accepting and serving for DrainDuration while their HTTP
// connection managers ask clients to move away (HTTP/1 "Connection:
// close", HTTP/2 GOAWAY, through listener.Drainer); outbound listeners
// keep serving as usual, so that the application's own calls still work
// while it shuts down. Then Run closes every listener and connection.
// Stop cuts the period short; a component error ends it with that error.
//
// With ExitOnZeroActiveConnections the period is Istio's
// EXIT_ON_ZERO_ACTIVE_CONNECTIONS (pilot-agent's terminate, pkg/envoy
// agent.go): MinimumDrainDuration first, then the open downstream
// connections of every listener are counted (Envoy's downstream_cx_active
// summed over its listeners, which do not include admin, health and
// metrics) at once and every second until there are none. Outbound
// connections count too: the application's own keep-alive connections
// keep the proxy up until the application closes them. DrainDuration does
// not bound that wait, as in Istio: Stop ends it, or the orchestrator's
// kill.
func (s *Sidecar) terminate(errc <-chan error) error {
	s.life.draining.Store(true)
	s.listeners.Drain(listener.Inbound)
	period := s.cfg.DrainDuration
	if s.cfg.ExitOnZeroActiveConnections {
		period = s.cfg.MinimumDrainDuration
		s.log.Info("terminating: draining inbound listeners, then waiting for active connections to end", "minimum_drain_duration", period)
	} else {
		s.log.Info("terminating: draining inbound listeners", "drain_duration", period)
	}
	t := time.NewTimer(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.life.stop:
			s.log.Info("stopping now: drain period cut short")
			return nil
		case err := <-errc:
			return err
		}
		if !s.cfg.ExitOnZeroActiveConnections {
			s.log.Info("drain period over: closing listeners")
			return nil
		}
		n := s.activeConnections()
		if n == 0 {
			s.log.Info("no active connections left: closing listeners")
			return nil
		}
		s.log.Info("waiting for active connections to end", "active", n)
		t.Reset(activeConnectionCheck)
	}
}

// activeConnectionCheck is how often terminate counts the connections
// after the minimum drain (Istio's activeConnectionCheckDelay).
const activeConnectionCheck = time.Second

// activeConnections counts the open downstream connections of the
// listeners, the explicit proxy's included.
func (s *Sidecar) activeConnections() int {
	n := s.listeners.ActiveConnections()
	if s.explicit != nil {
		n += s.explicit.activeConnections()
	}
	return n
}

// drainListeners serves Envoy's POST /drain_listeners: ?inboundonly limits
// it to inbound listeners; ?graceful first drains them (they keep serving,
// clients are asked to move away: "Connection: close", GOAWAY) for
// DrainDuration, then stops them; without it they stop accepting at once.
// Without ?inboundonly the explicit proxy is one of them, as every
// listener is in Envoy. Established connections go on
// either way; readiness is not changed (see /healthcheck/fail).
func (s *Sidecar) drainListeners(runCtx context.Context, bg *sync.WaitGroup) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		var sel listener.Selector
		if q.Has("inboundonly") {
			sel = listener.Inbound
		}
		if !q.Has("graceful") {
			s.listeners.StopListening(sel)
			if s.explicit != nil && sel == nil {
				s.explicit.stopListening()
			}
			w.Write([]byte("OK\n"))
			return
		}
		s.listeners.Drain(sel)
		if s.explicit != nil && sel == nil {
			// Envoy drains every listener: the explicit proxy is one.
			s.explicit.drain()
		}
		bg.Go(func() {
			t := time.NewTimer(s.cfg.DrainDuration)
			defer t.Stop()
			select {
			case <-t.C:
				s.listeners.StopListening(sel)
				if s.explicit != nil && sel == nil {
					s.explicit.stopListening()
				}
			case <-runCtx.Done():
			}
		})
		w.Write([]byte("OK\n"))
	}
}

// healthcheck serves POST /healthcheck/fail and /healthcheck/ok: readiness
// fails (or recovers) while everything keeps serving, as Envoy's.
func (s *Sidecar) healthcheck(fail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		s.life.hcFailed.Store(fail)
		w.Write([]byte("OK\n"))
	}
}
