package server

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// pushEvent is one (possibly merged) push: a snapshot and what changed since
// the snapshot of the previous event. Events handed to connections are
// shared and immutable; merging builds a new event.
type pushEvent struct {
	snap *model.Snapshot
	full bool
	// all is set when the change set is unknown: everything may have changed.
	all      bool
	configs  map[config.Key]struct{}
	services map[model.ServiceKey]struct{}
	start    time.Time
	reason   string
}

// newEvent copies req's sets so the caller may reuse its maps.
func newEvent(snap *model.Snapshot, req PushRequest, now time.Time) *pushEvent {
	ev := &pushEvent{
		snap:   snap,
		full:   req.Full,
		all:    req.ConfigsUpdated == nil && req.ServicesUpdated == nil,
		start:  req.Start,
		reason: req.Reason,
	}
	if ev.start.IsZero() {
		ev.start = now
	}
	if !ev.all {
		ev.configs = maps.Clone(req.ConfigsUpdated)
		ev.services = maps.Clone(req.ServicesUpdated)
	}
	return ev
}

// merge combines an older event a with a newer event b into a new event:
// b's snapshot, the union of the change sets, Full if either is, the
// earliest start. Neither input is modified.
func merge(a, b *pushEvent) *pushEvent {
	out := *a
	out.configs = maps.Clone(a.configs)
	out.services = maps.Clone(a.services)
	mergeInto(&out, b)
	return &out
}

// mergeInto merges b into a, which the caller owns (not shared).
func mergeInto(a, b *pushEvent) {
	a.snap = b.snap
	a.full = a.full || b.full
	if b.start.Before(a.start) {
		a.start = b.start
	}
	if b.reason != "" && !strings.Contains(a.reason, b.reason) && len(a.reason) < maxReason {
		if a.reason != "" {
			a.reason += ","
		}
		a.reason += b.reason
	}
	if a.all || b.all {
		a.all, a.configs, a.services = true, nil, nil
		return
	}
	if len(b.configs) > 0 && a.configs == nil {
		a.configs = make(map[config.Key]struct{}, len(b.configs))
	}
	maps.Copy(a.configs, b.configs)
	if len(b.services) > 0 && a.services == nil {
		a.services = make(map[model.ServiceKey]struct{}, len(b.services))
	}
	maps.Copy(a.services, b.services)
}

// maxReason bounds the merged reason string kept for logs.
const maxReason = 256

// debouncer merges Update calls. add may be called from any goroutine; run
// is the single consumer.
type debouncer struct {
	quiet, max time.Duration
	signal     chan struct{} // capacity 1: "something was added"

	mu      sync.Mutex
	pending *pushEvent // owned by the debouncer until dispatched
	first   time.Time  // when the first pending Update arrived
	last    time.Time  // when the latest pending Update arrived
}

func newDebouncer(quiet, max time.Duration) *debouncer {
	return &debouncer{quiet: quiet, max: max, signal: make(chan struct{}, 1)}
}

func (d *debouncer) add(snap *model.Snapshot, req PushRequest, now time.Time) {
	ev := newEvent(snap, req, now)
	d.mu.Lock()
	if d.pending == nil {
		d.pending, d.first = ev, now
	} else {
		mergeInto(d.pending, ev)
	}
	d.last = now
	d.mu.Unlock()
	select {
	case d.signal <- struct{}{}:
	default:
	}
}

// take returns the pending event if it is due, or how long to wait.
func (d *debouncer) take(now time.Time) (ev *pushEvent, delay time.Duration, wait time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		return nil, 0, -1
	}
	quiet, total := now.Sub(d.last), now.Sub(d.first)
	if quiet >= d.quiet || total >= d.max {
		ev, d.pending = d.pending, nil
		return ev, total, 0
	}
	wait = d.quiet - quiet
	if rest := d.max - total; rest < wait {
		wait = rest
	}
	return nil, 0, wait
}

// run calls dispatch with each merged event until ctx is done. Dispatch
// runs on this goroutine, so pushes are handed out in order.
func (d *debouncer) run(ctx context.Context, dispatch func(ev *pushEvent, debounced time.Duration)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.signal:
			if !armed {
				timer.Reset(d.quiet)
				armed = true
			}
		case <-timer.C:
			armed = false
			ev, delay, wait := d.take(time.Now())
			switch {
			case ev != nil:
				dispatch(ev, delay)
			case wait > 0:
				timer.Reset(wait)
				armed = true
			}
		}
	}
}
