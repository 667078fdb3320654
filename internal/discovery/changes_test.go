package discovery

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

func vsKey(name string) config.Key {
	return config.Key{Kind: schema.VirtualService, Namespace: "default", Name: name}
}

func svcKey(host string) model.ServiceKey {
	return model.ServiceKey{Hostname: host, Namespace: "default"}
}

// addCall is one call of changes.add.
type addCall struct {
	full   bool
	cfg    *config.Key
	svcs   []model.ServiceKey
	reason string
	at     time.Duration // after t0
}

func TestChangesMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k1, k2 := vsKey("a"), vsKey("b")
	s1, s2 := svcKey("a.example.com"), svcKey("b.example.com")
	tests := []struct {
		name     string
		adds     []addCall
		full     bool
		configs  []config.Key
		services []model.ServiceKey
		start    time.Duration
		reasons  []string
	}{
		{
			name:     "one incremental change",
			adds:     []addCall{{svcs: []model.ServiceKey{s1}, reason: "registry", at: 5}},
			start:    5,
			services: []model.ServiceKey{s1},
			reasons:  []string{"registry"},
		},
		{
			name: "full is ORed, keys are unioned, reasons deduplicated",
			adds: []addCall{
				{svcs: []model.ServiceKey{s1}, reason: "registry", at: 1},
				{full: true, cfg: &k1, reason: "config update", at: 2},
				{svcs: []model.ServiceKey{s2, s1}, reason: "registry", at: 3},
				{cfg: &k2, reason: "config add", at: 4},
				{cfg: &k1, reason: "config update", at: 5},
			},
			full:     true,
			configs:  []config.Key{k1, k2},
			services: []model.ServiceKey{s1, s2},
			start:    1,
			reasons:  []string{"config add", "config update", "registry"},
		},
		{
			name: "full stays set after later incremental changes",
			adds: []addCall{
				{full: true, reason: "registry", at: 1},
				{svcs: []model.ServiceKey{s1}, reason: "registry", at: 2},
			},
			full:     true,
			services: []model.ServiceKey{s1},
			start:    1,
			reasons:  []string{"registry"},
		},
		{
			// Handlers take time.Now() before add locks, so two goroutines
			// can arrive out of order: the batch starts at the earliest.
			name: "earliest start wins, whatever the order of arrival",
			adds: []addCall{
				{cfg: &k1, reason: "config update", at: 9},
				{svcs: []model.ServiceKey{s1}, reason: "registry", at: 3},
				{cfg: &k2, reason: "config add", at: 7},
			},
			configs:  []config.Key{k1, k2},
			services: []model.ServiceKey{s1},
			start:    3,
			reasons:  []string{"config add", "config update", "registry"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChanges()
			for _, a := range tt.adds {
				c.add(a.full, a.cfg, a.svcs, a.reason, t0.Add(a.at))
			}
			b, ok := c.take()
			if !ok {
				t.Fatal("take found nothing after add")
			}
			if b.full != tt.full {
				t.Errorf("full = %v, want %v", b.full, tt.full)
			}
			if got := slices.SortedFunc(maps.Keys(b.configs), cmpKey); !slices.Equal(got, tt.configs) {
				t.Errorf("configs = %v, want %v", got, tt.configs)
			}
			if got := slices.SortedFunc(maps.Keys(b.services), cmpSvc); !slices.Equal(got, tt.services) {
				t.Errorf("services = %v, want %v", got, tt.services)
			}
			if want := t0.Add(tt.start); !b.start.Equal(want) {
				t.Errorf("start = %v, want %v", b.start, want)
			}
			if got := slices.Sorted(slices.Values(b.reasons)); !slices.Equal(got, tt.reasons) {
				t.Errorf("reasons = %q, want %q", got, tt.reasons)
			}
			if _, ok := c.take(); ok {
				t.Error("a second take found changes")
			}
		})
	}
}

func cmpKey(a, b config.Key) int { return strings.Compare(a.String(), b.String()) }

func cmpSvc(a, b model.ServiceKey) int { return strings.Compare(a.String(), b.String()) }

func TestChangesTakeResets(t *testing.T) {
	t0 := time.Now()
	c := newChanges()
	if _, ok := c.take(); ok {
		t.Fatal("take on a fresh changes found something")
	}
	k1, k2 := vsKey("a"), vsKey("b")
	c.add(true, &k1, []model.ServiceKey{svcKey("a")}, "first", t0)
	first, _ := c.take()

	c.add(false, &k2, nil, "second", t0.Add(time.Second))
	second, ok := c.take()
	if !ok {
		t.Fatal("take found nothing after the second add")
	}
	// Nothing of the first batch leaks into the second.
	if second.full {
		t.Error("full carried over into the next batch")
	}
	if len(second.services) != 0 || len(second.configs) != 1 || !slices.Equal(second.reasons, []string{"second"}) {
		t.Errorf("second batch = %+v, want only k2 and reason second", second)
	}
	if !second.start.Equal(t0.Add(time.Second)) {
		t.Errorf("second start = %v, want the time of its first add", second.start)
	}
	// A taken batch is the caller's: later adds do not write into it.
	if _, ok := first.configs[k2]; ok || len(first.configs) != 1 {
		t.Errorf("first batch's configs changed after take: %v", first.configs)
	}
}

func TestChangesWakeNeverBlocks(t *testing.T) {
	c := newChanges()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Nobody reads wake: every add after the first must not block.
		for i := range 1000 {
			k := vsKey(fmt.Sprint(i))
			c.add(false, &k, nil, "config update", time.Now())
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("add blocked with an unread wake-up pending")
	}
	if n := len(c.wake); n != 1 {
		t.Fatalf("%d wake-ups pending, want exactly 1", n)
	}
	<-c.wake
	b, ok := c.take()
	if !ok || len(b.configs) != 1000 {
		t.Fatalf("take after 1000 adds: ok=%v, %d configs", ok, len(b.configs))
	}
}

// TestChangesConcurrent has many writers and one reader, as in the
// control plane; every key added is taken exactly once (run with -race).
func TestChangesConcurrent(t *testing.T) {
	const writers, perWriter = 4, 200
	c := newChanges()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k := vsKey(fmt.Sprintf("%d-%d", w, i))
				c.add(i%50 == 0, &k, nil, "config update", time.Now())
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	seen := map[config.Key]int{}
	collect := func() {
		if b, ok := c.take(); ok {
			for k := range b.configs {
				seen[k]++
			}
		}
	}
	deadline := time.After(10 * time.Second)
loop:
	for {
		select {
		case <-c.wake:
			collect()
		case <-writersDone:
			break loop
		case <-deadline:
			t.Fatal("writers did not finish")
		}
	}
	collect()
	if len(seen) != writers*perWriter {
		t.Fatalf("took %d distinct keys, want %d", len(seen), writers*perWriter)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("key %v taken %d times", k, n)
		}
	}
}
