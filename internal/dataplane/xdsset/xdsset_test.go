package xdsset_test

import (
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

func TestOf(t *testing.T) {
	c := func(timeout time.Duration) *clusterv3.Cluster {
		return &clusterv3.Cluster{Name: "c", ConnectTimeout: durationpb.New(timeout)}
	}
	a := xdsset.Of(map[string]*clusterv3.Cluster{"c": c(time.Second), "b": {Name: "b"}})
	same := xdsset.Of(map[string]*clusterv3.Cluster{"c": c(time.Second)})
	changed := xdsset.Of(map[string]*clusterv3.Cluster{"c": c(2 * time.Second)})
	if got := a.Names(); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("Names %v, want sorted [b c]", got)
	}
	if !xdsset.Unchanged(a.Version("c"), same.Version("c")) {
		t.Errorf("equal messages: versions %q and %q differ", a.Version("c"), same.Version("c"))
	}
	if xdsset.Unchanged(a.Version("c"), changed.Version("c")) {
		t.Errorf("changed message kept version %q", a.Version("c"))
	}
	if v := a.Version("absent"); v != "" || xdsset.Unchanged(v, same.Version("absent")) {
		t.Errorf("absent name: version %q, and two absent versions must not be equal", v)
	}
	if m, err := a.Msg("c"); err != nil || m.(*clusterv3.Cluster).GetConnectTimeout().AsDuration() != time.Second {
		t.Errorf("Msg(c) = %v, %v", m, err)
	}
	nils := xdsset.Of(map[string]*endpointv3.ClusterLoadAssignment{"gone": nil})
	if m, err := nils.Msg("gone"); m != nil || err != nil || nils.Version("gone") == "" {
		t.Errorf("nil message: Msg %v, %v, version %q; want nil, nil and a version", m, err, nils.Version("gone"))
	}
}
