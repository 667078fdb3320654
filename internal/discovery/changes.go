package discovery

import (
	"sync"
	"time"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// changes accumulates what happened since the last snapshot. Handlers add
// to it from the stores' goroutines; the snapshot loop takes it.
type changes struct {
	mu       sync.Mutex
	pending  bool
	full     bool
	configs  map[config.Key]struct{}
	services map[model.ServiceKey]struct{}
	start    time.Time
	reasons  map[string]struct{}
	wake     chan struct{}
}

func newChanges() *changes {
	return &changes{wake: make(chan struct{}, 1)}
}

func (c *changes) add(full bool, cfg *config.Key, svcs []model.ServiceKey, reason string, now time.Time) {
	c.mu.Lock()
	if !c.pending {
		c.pending, c.start = true, now
		c.configs = map[config.Key]struct{}{}
		c.services = map[model.ServiceKey]struct{}{}
		c.reasons = map[string]struct{}{}
	} else if now.Before(c.start) {
		// Handlers read the clock before taking the lock, so adds can
		// arrive out of order: the batch starts at its earliest change.
		c.start = now
	}
	c.full = c.full || full
	if cfg != nil {
		c.configs[*cfg] = struct{}{}
	}
	for _, s := range svcs {
		c.services[s] = struct{}{}
	}
	c.reasons[reason] = struct{}{}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// batch is one taken set of changes.
type batch struct {
	full     bool
	configs  map[config.Key]struct{}
	services map[model.ServiceKey]struct{}
	start    time.Time
	reasons  []string
}

func (c *changes) take() (batch, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pending {
		return batch{}, false
	}
	b := batch{full: c.full, configs: c.configs, services: c.services, start: c.start}
	for r := range c.reasons {
		b.reasons = append(b.reasons, r)
	}
	c.pending, c.full = false, false
	c.configs, c.services, c.reasons = nil, nil, nil
	return b, true
}
