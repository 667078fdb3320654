package lb

import (
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// ring is Envoy's ketama ring (ring_hash_lb.cc). Every host gets
// scale × normalized weight points, the i-th hashed from "<key>_<i>" where
// key is the host's address ("10.0.0.1:8080") unless overridden; scale
// gives the lightest host ceil(minimum_ring_size × its weight) points,
// capped by maximum_ring_size. A request hash maps to the first point at
// or after it, wrapping around.
type ring struct {
	hashes []uint64 // sorted
	hosts  []*host.Host
}

func newRing(ws []weightedHost, minWeight float64, cfg Config) *ring {
	r := &ring{}
	if len(ws) == 0 {
		return r
	}
	scale := math.Min(math.Ceil(minWeight*float64(cfg.MinRingSize))/minWeight, float64(cfg.MaxRingSize))
	size := int(math.Ceil(scale))
	type point struct {
		hash  uint64
		order int
		h     *host.Host
	}
	points := make([]point, 0, size)
	var buf []byte
	current, target := 0.0, 0.0
	for _, e := range ws {
		buf = append(buf[:0], e.h.HashKey(cfg.UseHostnameForHashing)...)
		buf = append(buf, '_')
		prefix := len(buf)
		target += scale * e.w
		for i := uint64(0); current < target; i++ {
			buf = strconv.AppendUint(buf[:prefix], i, 10)
			var hash uint64
			if cfg.HashFunction == MurmurHash2 {
				hash = murmurHash2(buf, murmurSeed)
			} else {
				hash = xxhash.Sum64(buf)
			}
			points = append(points, point{hash, len(points), e.h})
			current++
		}
	}
	slices.SortFunc(points, func(a, b point) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return a.order - b.order
	})
	r.hashes = make([]uint64, len(points))
	r.hosts = make([]*host.Host, len(points))
	for i, p := range points {
		r.hashes[i], r.hosts[i] = p.hash, p.h
	}
	return r
}

// choose is ketama_get_server, as Envoy ported it: binary search for the
// point p with ring[p-1] < h <= ring[p], 0 past the end. A retry attempt
// moves attempt points further along the ring.
func (r *ring) choose(h uint64, attempt uint32) *host.Host {
	n := int64(len(r.hashes))
	if n == 0 {
		return nil
	}
	low, high := int64(0), n
	var mid int64
	for {
		mid = (low + high) / 2
		if mid == n {
			mid = 0
			break
		}
		midval := r.hashes[mid]
		var midval1 uint64
		if mid > 0 {
			midval1 = r.hashes[mid-1]
		}
		if h <= midval && h > midval1 {
			break
		}
		if midval < h {
			low = mid + 1
		} else {
			high = mid - 1
		}
		if low > high {
			mid = 0
			break
		}
	}
	if attempt > 0 {
		mid = (mid + int64(attempt)) % n
	}
	return r.hosts[mid]
}
