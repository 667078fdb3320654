package server

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/trellismesh/trellis/internal/xds"
)

// Types the server serves, in the order of a full push (CDS, EDS, LDS, RDS:
// clusters before their endpoints, listeners before their routes). Any other
// type URL is ignored: no state is kept and no response is sent, as Istio
// does for types it has no generator for. Envoy then keeps waiting for that
// type (bounded by its initial_fetch_timeout) instead of being told that
// every resource of it was deleted, which an empty wildcard response would
// mean.
const numTypes = 4

func typeURLAt(i int) string {
	switch i {
	case 0:
		return xds.ClusterType
	case 1:
		return xds.EndpointType
	case 2:
		return xds.ListenerType
	case 3:
		return xds.RouteType
	}
	return ""
}

// typeIndex returns the push-order index of a type URL, or -1.
func typeIndex(typeURL string) int {
	switch typeURL {
	case xds.ClusterType:
		return 0
	case xds.EndpointType:
		return 1
	case xds.ListenerType:
		return 2
	case xds.RouteType:
		return 3
	}
	return -1
}

const edsIndex = 1

// wildcardType reports whether a type may be subscribed as a whole (CDS,
// LDS); the others are always subscribed by name.
func wildcardType(i int) bool { return i == 0 || i == 2 }

// wildcardRequest reports whether the names of a first request ask for
// everything: none (the legacy form) or "*".
func wildcardRequest(names []string) bool {
	return len(names) == 0 || slices.Contains(names, "*")
}

// wildcard reports whether the connection's subscription of type i is a
// wildcard one (decided by the type's first request).
func (c *connection) wildcard(i int) bool {
	ts := c.types[i]
	return ts != nil && ts.wild
}

// metricType is the type label of metrics: cds, eds, lds, rds.
func metricType(i int) string { return strings.ToLower(xds.ShortName(typeURLAt(i))) }

// typeState is what a connection remembers about one type. It never holds
// resource bodies: sotw keeps one digest of the last sent set, delta keeps
// a sorted (name, version hash) list whose name strings are the ones of the
// shared generated Resources (interned), not copies from requests.
//
// Owned by the stream goroutine. The status fields (marked) are also read by
// Clients() and are written under connection.mu.
type typeState struct {
	// names is the sotw subscription of a named type, sorted, deduplicated.
	names []string
	// entries is the delta state, sorted by name: subscribed names (named
	// types) or names sent (wildcard types) with the version last sent.
	entries []entry
	// digest is the sotw hash of the last sent set.
	digest uint64
	// wild: the type is subscribed as a whole (CDS/LDS requested without
	// names); otherwise names/entries hold the subscription.
	wild bool
	// responded: a response was sent for this type on this stream.
	responded bool
	// stale: the type must be regenerated on the next push whatever the
	// push's type set (no snapshot yet, or the last generation failed).
	stale bool
	// pushStart is the earliest change (unix ns) sent and not yet ACKed,
	// for the convergence metric; 0 when none.
	pushStart int64

	// Status, under connection.mu.
	version      string // last sent version (sotw digest, delta snapshot version)
	ackedVersion string
	nonce        uint64 // last sent nonce (0: none)
	ackedNonce   uint64
	nack         string // error of the most recent NACK
	nackedNonce  uint64 // nonce of the most recent NACKed response
}

// entry is one delta resource name with the hash of the version last sent.
type entry struct {
	name string
	ver  uint64
}

// Reserved entry versions; real version hashes are never below verMin.
const (
	// verAbsent: subscribed, and the proxy knows it does not exist (or it
	// has not been sent since).
	verAbsent uint64 = iota
	// verPending: subscribed, no answer sent yet.
	verPending
	verMin
)

// versionHash maps a resource version string to a compact hash.
func versionHash(v string) uint64 {
	h := xxhash.Sum64String(v)
	if h < verMin {
		h += verMin
	}
	return h
}

// digests memoizes digestOf for the generated sets of one snapshot. The
// generator hands the same shared slice to every proxy with the same
// inputs, so a push to a thousand similar proxies hashes each set once.
// It is cleared when a newer snapshot is seen, which also lets the old
// slices go.
type digests struct {
	mu      sync.Mutex
	version string
	m       map[digestKey]uint64
}

type digestKey struct {
	first *xds.Resource
	n     int
}

func (d *digests) of(snapVersion string, res []xds.Resource) uint64 {
	if len(res) == 0 {
		return digestOf(res)
	}
	k := digestKey{first: &res[0], n: len(res)}
	d.mu.Lock()
	if d.version != snapVersion || d.m == nil {
		d.version, d.m = snapVersion, map[digestKey]uint64{}
	}
	v, ok := d.m[k]
	d.mu.Unlock()
	if ok {
		return v
	}
	v = digestOf(res)
	d.mu.Lock()
	if d.version == snapVersion {
		d.m[k] = v
	}
	d.mu.Unlock()
	return v
}

// digestOf hashes the names and versions of a generated set, in order.
func digestOf(res []xds.Resource) uint64 {
	d := xxhash.New()
	var sep = []byte{0}
	for i := range res {
		_, _ = d.WriteString(res[i].Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(res[i].Version)
		_, _ = d.Write(sep)
	}
	return d.Sum64()
}

func formatDigest(d uint64) string { return strconv.FormatUint(d, 16) }

func formatNonce(n uint64) string { return strconv.FormatUint(n, 36) }

// parseNonce parses a nonce this server sent; 0 for anything else.
func parseNonce(s string) uint64 {
	n, err := strconv.ParseUint(s, 36, 64)
	if err != nil {
		return 0
	}
	return n
}

// sortedNames copies names, sorted and deduplicated, into a slice of exact
// length (the request's slice is not retained).
func sortedNames(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	out = slices.Compact(out)
	return slices.Clip(out)
}

// internNames replaces subscribed names (sorted) by the equal name strings
// of the generated resources, so a subscription shares the generator's
// string bytes instead of keeping the copies unmarshalled from requests.
func internNames(names []string, res []xds.Resource) {
	for i := range res {
		if j, ok := slices.BinarySearch(names, res[i].Name); ok {
			names[j] = res[i].Name
		}
	}
}

// byName returns the resources sorted by name, without modifying res (which
// may be shared). Already sorted input is returned as is.
func byName(res []xds.Resource) []xds.Resource {
	if slices.IsSortedFunc(res, func(a, b xds.Resource) int { return strings.Compare(a.Name, b.Name) }) {
		return res
	}
	out := slices.Clone(res)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// findEntry returns the index of name in sorted entries.
func findEntry(entries []entry, name string) (int, bool) {
	return slices.BinarySearchFunc(entries, name, func(e entry, n string) int { return strings.Compare(e.name, n) })
}
