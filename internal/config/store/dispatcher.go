package store

import (
	"context"
	"sync"

	"github.com/trellismesh/trellis/internal/config"
)

// Dispatcher delivers events to handlers registered per kind, serially and
// in order, from the goroutine running Run. Store implementations embed one
// to get the handler semantics documented on Store.
//
// The queue is unbounded so that publishing never blocks a writer; a store
// calls Publish and Register while holding its own lock, which makes the
// event order match the order of its state changes, and the dispatcher
// calls handlers holding no lock at all, so a handler may call back into the
// store.
type Dispatcher struct {
	mu       sync.Mutex
	handlers map[config.GroupKind][]func(config.Event)
	queue    []delivery
	wake     chan struct{}
}

// delivery is one queued unit of work: an event for the handlers that were
// registered when it was published, or a barrier function.
type delivery struct {
	ev       config.Event
	handlers []func(config.Event)
	fn       func()
}

// NewDispatcher returns an idle dispatcher; events queue until Run.
func NewDispatcher() *Dispatcher {
	return &Dispatcher{
		handlers: make(map[config.GroupKind][]func(config.Event)),
		wake:     make(chan struct{}, 1),
	}
}

// Register adds h for kind. existing is the current state of the kind at
// the moment of registration: h first receives an EventAdd for each element,
// then every event published after Register. The caller must hold the lock
// that orders its Publish calls, so that existing and later events agree.
func (d *Dispatcher) Register(kind config.GroupKind, h func(config.Event), existing []config.Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	only := []func(config.Event){h}
	for i := range existing {
		c := existing[i]
		d.queue = append(d.queue, delivery{ev: config.Event{Type: config.EventAdd, New: &c}, handlers: only})
	}
	// Copy on write: queued deliveries keep the slice they were given.
	hs := d.handlers[kind]
	d.handlers[kind] = append(hs[:len(hs):len(hs)], h)
	d.signal()
}

// Publish queues ev for the handlers currently registered for its kind.
func (d *Dispatcher) Publish(ev config.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	hs := d.handlers[ev.Key().Kind]
	if len(hs) == 0 {
		return
	}
	d.queue = append(d.queue, delivery{ev: ev, handlers: hs})
	d.signal()
}

// Barrier queues fn to run on the dispatcher goroutine after every delivery
// queued before it. Stores use it to flip HasSynced once the initial events
// have been delivered.
func (d *Dispatcher) Barrier(fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queue = append(d.queue, delivery{fn: fn})
	d.signal()
}

func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers queued work until ctx is cancelled. Work still queued then
// is dropped. Only one Run may be active at a time.
func (d *Dispatcher) Run(ctx context.Context) {
	for {
		d.mu.Lock()
		batch := d.queue
		d.queue = nil
		d.mu.Unlock()
		for _, w := range batch {
			if ctx.Err() != nil {
				return
			}
			if w.fn != nil {
				w.fn()
				continue
			}
			for _, h := range w.handlers {
				h(w.ev)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		}
	}
}
