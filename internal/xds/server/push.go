package server

import (
	"time"

	"github.com/trellismesh/trellis/internal/model"
)

// dispatch publishes a debounced event: it becomes the current snapshot and
// is handed to every connection's mailbox. It never blocks on a proxy; the
// work (scoping, generation, sending) happens on each stream's goroutine
// with at most PushConcurrency generations at once.
func (s *Server) dispatch(ev *pushEvent, debounced time.Duration) {
	s.metrics.debounceTime.Observe(debounced.Seconds())
	s.mu.Lock()
	s.snap = ev.snap
	conns := make([]*connection, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.log.Debug("xds push", "snapshot", ev.snap.Version, "full", ev.full, "reason", ev.reason,
		"proxies", len(conns), "debounced", debounced)
	for _, c := range conns {
		c.enqueue(ev)
	}
}

// typePusher regenerates and, if changed, sends one type.
type typePusher func(i int, snap *model.Snapshot, start time.Time) error

// onPush processes a push event on the stream goroutine: unless the change
// cannot affect the proxy, it regenerates the types the push concerns (all
// subscribed types on a full push or when the proxy's own instances
// changed, EDS alone otherwise) in the order CDS,
// EDS, LDS, RDS. Types left stale earlier (no snapshot yet, generator
// error) are regenerated whatever the push.
func (c *connection) onPush(ev *pushEvent, push typePusher) error {
	old := c.snap
	c.snap = ev.snap

	if err := c.s.acquire(); err != nil {
		return err
	}
	affected := affects(c.proxy, old, ev)
	// An endpoint-only change that adds, removes or changes the proxy's
	// own instances changes its inbound listeners and clusters too.
	full := ev.full || (affected && old != nil && ownInstancesChanged(c.proxy, old, ev.snap))
	c.s.release()
	if !affected {
		c.s.metrics.scopedSkips.Inc()
	}
	for i := range numTypes {
		ts := c.types[i]
		if ts == nil {
			continue
		}
		if !ts.stale && (!affected || (!full && i != edsIndex)) {
			continue
		}
		if err := push(i, ev.snap, ev.start); err != nil {
			return err
		}
	}
	return nil
}
