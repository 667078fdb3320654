package up

import (
	"net/netip"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
)

// addressOverlay is a read-only view of a store in which WorkloadEntries
// whose spec.address mapAddr maps carry the mapped address instead: with
// --netns, a workload's 127.0.0.x address of the directory becomes its
// namespace's address on the bridge (addrAllocator), for the control
// plane only. The user's files are never written. Every other object, and
// WorkloadEntries with an unmapped address, pass through unchanged.
type addressOverlay struct {
	store.Store
	mapAddr func(netip.Addr) (netip.Addr, bool)
}

func (o *addressOverlay) Get(kind config.GroupKind, ns, name string) (config.Config, bool) {
	c, ok := o.Store.Get(kind, ns, name)
	if !ok {
		return c, ok
	}
	return o.rewrite(c), true
}

func (o *addressOverlay) List(kind config.GroupKind, ns string) []config.Config {
	cs := o.Store.List(kind, ns)
	if kind != schema.WorkloadEntry {
		return cs
	}
	for i := range cs {
		cs[i] = o.rewrite(cs[i])
	}
	return cs
}

func (o *addressOverlay) RegisterEventHandler(kind config.GroupKind, h func(config.Event)) {
	if kind != schema.WorkloadEntry {
		o.Store.RegisterEventHandler(kind, h)
		return
	}
	o.Store.RegisterEventHandler(kind, func(e config.Event) {
		if e.Old != nil {
			c := o.rewrite(*e.Old)
			e.Old = &c
		}
		if e.New != nil {
			c := o.rewrite(*e.New)
			e.New = &c
		}
		h(e)
	})
}

// rewrite returns c with its address mapped; c itself (shared) is not
// mutated.
func (o *addressOverlay) rewrite(c config.Config) config.Config {
	if c.Kind != schema.WorkloadEntry {
		return c
	}
	spec, ok := c.Spec.(*networking.WorkloadEntry)
	if !ok {
		return c
	}
	a, err := netip.ParseAddr(spec.GetAddress())
	if err != nil {
		return c
	}
	to, ok := o.mapAddr(a)
	if !ok {
		return c
	}
	ns := proto.Clone(spec).(*networking.WorkloadEntry)
	ns.Address = to.String()
	c.Spec = ns
	return c
}
