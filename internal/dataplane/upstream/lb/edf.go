package lb

import (
	"sync"
	"sync/atomic"
)

// edf is Envoy's earliest-deadline-first scheduler (edf_scheduler.h): each
// entry is due 1/weight after it was last picked; the entry due first is
// picked, ties going to the one queued first. Over time every entry is
// picked in proportion to its weight, evenly spread. Entries are indexes;
// weight is read when an entry is (re)queued, so it may change between
// picks (weighted least request).
type edf struct {
	mu     sync.Mutex
	now    float64
	order  uint64
	queue  []edfEntry // binary min-heap
	weight func(i int) float64
}

type edfEntry struct {
	deadline float64
	order    uint64
	index    int32
}

func (a edfEntry) before(b edfEntry) bool {
	return a.deadline < b.deadline || (a.deadline == b.deadline && a.order < b.order)
}

// newEDF queues entries 0..n-1 in order and makes picks picks, so that
// balancers built at the same time start at different points of the
// schedule (Envoy's createWithPicks).
func newEDF(n int, weight func(i int) float64, picks uint64) *edf {
	s := &edf{weight: weight, queue: make([]edfEntry, 0, n)}
	for i := range n {
		s.queue = append(s.queue, edfEntry{deadline: 1 / s.safeWeight(i), order: s.order, index: int32(i)})
		s.order++
	}
	for i := len(s.queue)/2 - 1; i >= 0; i-- {
		s.down(i)
	}
	for range picks {
		s.pickLocked()
	}
	return s
}

func (s *edf) safeWeight(i int) float64 {
	w := s.weight(i)
	if !(w > 1e-300) { // also catches NaN
		w = 1e-300
	}
	return w
}

// pick returns the next index (the queue must not be empty).
func (s *edf) pick() int {
	s.mu.Lock()
	i := s.pickLocked()
	s.mu.Unlock()
	return i
}

func (s *edf) pickLocked() int {
	top := &s.queue[0]
	i := int(top.index)
	s.now = top.deadline
	top.deadline = s.now + 1/s.safeWeight(i)
	top.order = s.order
	s.order++
	s.down(0)
	return i
}

func (s *edf) down(i int) {
	q := s.queue
	for {
		l := 2*i + 1
		if l >= len(q) {
			return
		}
		m := l
		if r := l + 1; r < len(q) && q[r].before(q[l]) {
			m = r
		}
		if !q[m].before(q[i]) {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

// maxScheduleTable bounds the precomputed schedules of weighted round robin.
const maxScheduleTable = 1 << 13

// schedule is one period of the EDF schedule of fixed integer weights,
// precomputed so that picks are lock-free: with weights w reduced by their
// gcd, a period of Σw picks gives every entry exactly w picks, in EDF
// order.
type schedule struct {
	seq  []int32
	next atomic.Uint64
}

// newSchedule returns nil when the period is longer than maxScheduleTable.
func newSchedule(weights []uint32, start uint64) *schedule {
	g := uint64(0)
	for _, w := range weights {
		g = gcd(g, uint64(w))
	}
	var period uint64
	for _, w := range weights {
		period += uint64(w) / g
	}
	if g == 0 || period > maxScheduleTable {
		return nil
	}
	e := newEDF(len(weights), func(i int) float64 { return float64(weights[i]) / float64(g) }, 0)
	s := &schedule{seq: make([]int32, period)}
	for k := range s.seq {
		s.seq[k] = int32(e.pickLocked())
	}
	s.next.Store(start % period)
	return s
}

func (s *schedule) pick() int {
	return int(s.seq[(s.next.Add(1)-1)%uint64(len(s.seq))])
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
