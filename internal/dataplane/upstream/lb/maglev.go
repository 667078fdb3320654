package lb

import (
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// maglev is Envoy's Maglev table (maglev_lb.cc, after section 3.4 of the
// Maglev paper). Hosts, sorted by key, take turns filling the table: each
// walks its own permutation (offset = xxHash64(key) % size, skip =
// xxHash64(key, seed 1) % (size-1) + 1) to its next free slot, a host of
// weight w / max weight taking a turn every max/w rounds. A request hash
// picks slot hash % size.
type maglev struct {
	size  uint64
	hosts []*host.Host
	table []uint32 // slot → index in hosts
}

func newMaglev(ws []weightedHost, maxWeight float64, size uint64, useHostname bool) *maglev {
	m := &maglev{size: size}
	if len(ws) == 0 {
		return m
	}
	type entry struct {
		key          string
		h            *host.Host
		weight       float64
		offset, skip uint64
		target       float64
		// pos is the permutation's current slot: (offset + skip × next) %
		// size, kept incrementally.
		pos uint64
	}
	entries := make([]entry, len(ws))
	for i, e := range ws {
		entries[i] = entry{key: e.h.HashKey(useHostname), h: e.h, weight: e.w}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
	seeded := xxhash.NewWithSeed(1)
	m.hosts = make([]*host.Host, len(entries))
	for i := range entries {
		e := &entries[i]
		e.offset = xxhash.Sum64String(e.key) % size
		seeded.ResetWithSeed(1)
		_, _ = seeded.WriteString(e.key)
		e.skip = seeded.Sum64()%(size-1) + 1
		e.pos = e.offset
		m.hosts[i] = e.h
	}
	const empty = ^uint32(0)
	m.table = make([]uint32, size)
	for i := range m.table {
		m.table[i] = empty
	}
	filled := uint64(0)
	for iteration := 1.0; filled < size; iteration++ {
		for i := range entries {
			if filled == size {
				break
			}
			e := &entries[i]
			// A host of the heaviest weight takes a slot every round; one
			// of a third of it, every third round.
			if iteration*e.weight < e.target {
				continue
			}
			e.target += maxWeight
			for m.table[e.pos] != empty {
				if e.pos += e.skip; e.pos >= size {
					e.pos -= size
				}
			}
			m.table[e.pos] = uint32(i)
			if e.pos += e.skip; e.pos >= size {
				e.pos -= size
			}
			filled++
		}
	}
	return m
}

// choose returns the host of slot hash % size. A retry attempt flips most
// bits of the hash, as Envoy does, so retries scatter over the table.
func (m *maglev) choose(hash uint64, attempt uint32) *host.Host {
	if len(m.hosts) == 0 {
		return nil
	}
	if attempt > 0 {
		hash ^= ^uint64(0) - uint64(attempt) + 1
	}
	return m.hosts[m.table[hash%m.size]]
}
