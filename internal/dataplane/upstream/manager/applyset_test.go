package manager_test

import (
	"maps"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// countingSet records which resources were decoded; with suffix, every
// version is another one (a server that re-versions unchanged content).
type countingSet struct {
	xdsset.Set
	suffix  string
	decoded map[string]int
}

func counting(s xdsset.Set, suffix string) *countingSet {
	return &countingSet{Set: s, suffix: suffix, decoded: map[string]int{}}
}

func (c *countingSet) Version(name string) string { return c.Set.Version(name) + c.suffix }

func (c *countingSet) Msg(name string) (proto.Message, error) {
	c.decoded[name]++
	return c.Set.Msg(name)
}

func (c *countingSet) names() []string { return slices.Sorted(maps.Keys(c.decoded)) }

func applySet(t *testing.T, m *manager.Manager, cs, es xdsset.Set) {
	t.Helper()
	if errs := m.ApplyClusterSet(cs); errs != nil {
		t.Fatalf("ApplyClusterSet: %v", errs)
	}
	if errs := m.ApplyEndpointSet(es); errs != nil {
		t.Fatalf("ApplyEndpointSet: %v", errs)
	}
}

// requestsTotal is the number of requests the cluster's current pools
// have carried.
func requestsTotal(t *testing.T, m *manager.Manager) uint64 {
	t.Helper()
	var n uint64
	for _, h := range clusterStatus(t, m, svcCluster).Hosts {
		for _, p := range h.Pools {
			n += p.RequestsTotal
		}
	}
	return n
}

// TestApplySetDecodesChangedOnly: resources with the version applied last
// are not decoded; new versions of the same content are decoded but keep
// the cluster as it was (same pools); a changed cluster alone is decoded
// and rebuilt.
func TestApplySetDecodesChangedOnly(t *testing.T) {
	b := newBackend(t, "b0", false)
	m := startManager(t, manager.Config{})
	x := generate(t, serviceYAML("HTTP", []*backend{b}, ""))
	allClusters, allCLAs := slices.Sorted(maps.Keys(x.clusters)), slices.Sorted(maps.Keys(x.clas))

	cs, es := counting(xdsset.Of(x.clusters), ""), counting(xdsset.Of(x.clas), "")
	applySet(t, m, cs, es)
	if !slices.Equal(cs.names(), allClusters) || !slices.Equal(es.names(), allCLAs) {
		t.Fatalf("first sets decoded %v and %v, want every resource", cs.names(), es.names())
	}
	mustGet(t, m, router.PickContext{})

	cs, es = counting(xdsset.Of(x.clusters), ""), counting(xdsset.Of(x.clas), "")
	applySet(t, m, cs, es)
	if len(cs.decoded)+len(es.decoded) != 0 {
		t.Errorf("same versions decoded again: clusters %v, assignments %v", cs.names(), es.names())
	}

	cs, es = counting(xdsset.Of(x.clusters), "-2"), counting(xdsset.Of(x.clas), "-2")
	applySet(t, m, cs, es)
	if !slices.Equal(cs.names(), allClusters) || !slices.Equal(es.names(), allCLAs) {
		t.Errorf("new versions decoded %v and %v, want every resource", cs.names(), es.names())
	}
	mustGet(t, m, router.PickContext{})
	if n := requestsTotal(t, m); n != 2 {
		t.Errorf("the cluster's pools carried %d requests, want 2: a new version of the same content replaced the cluster", n)
	}

	changed := generate(t, serviceYAML("HTTP", []*backend{b}, rule(`    connectionPool:
      http: {idleTimeout: 2h}`)))
	cs, es = counting(xdsset.Of(changed.clusters), "-2"), counting(xdsset.Of(changed.clas), "-2")
	applySet(t, m, cs, es)
	if got := cs.names(); !slices.Equal(got, []string{svcCluster}) {
		t.Errorf("changed configuration decoded clusters %v, want only %s", got, svcCluster)
	}
	if len(es.decoded) != 0 {
		t.Errorf("unchanged assignments decoded: %v", es.names())
	}
	mustGet(t, m, router.PickContext{})
	if n := requestsTotal(t, m); n != 1 {
		t.Errorf("the changed cluster's pools carried %d requests, want 1 (new pools)", n)
	}
}
