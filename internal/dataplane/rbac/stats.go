package rbac

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Stats receives the filters' counters by Envoy stat name
// ("http.rbac.allowed", "tcp.rbac.denied", "http.rbac.istio_dry_run_allow_shadow_denied").
// Implementations must be safe for concurrent use.
type Stats interface {
	Inc(name string)
}

// Counters is a Stats that keeps every counter in memory; a telemetry
// exporter reads them with Snapshot. The zero value is ready to use.
type Counters struct {
	m sync.Map // name → *atomic.Uint64
}

// Inc implements Stats.
func (c *Counters) Inc(name string) {
	v, ok := c.m.Load(name)
	if !ok {
		v, _ = c.m.LoadOrStore(name, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Get returns one counter's value.
func (c *Counters) Get(name string) uint64 {
	if v, ok := c.m.Load(name); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

// Names returns the counters' names, sorted.
func (c *Counters) Names() []string {
	var out []string
	c.m.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	sort.Strings(out)
	return out
}

// StatNames are the counters of one RBAC filter, resolved once at build
// time so that counting does not build strings per request.
type StatNames struct {
	Allowed, Denied             string
	ShadowAllowed, ShadowDenied string
}

// NewStatNames returns Envoy's names under prefix ("http." or the network
// filter's stat_prefix): <prefix>rbac.<rules prefix>allowed|denied and
// <prefix>rbac.<shadow prefix>shadow_allowed|shadow_denied.
func NewStatNames(prefix, rulesPrefix, shadowPrefix string) StatNames {
	base := prefix + "rbac."
	return StatNames{
		Allowed:       base + rulesPrefix + "allowed",
		Denied:        base + rulesPrefix + "denied",
		ShadowAllowed: base + shadowPrefix + "shadow_allowed",
		ShadowDenied:  base + shadowPrefix + "shadow_denied",
	}
}

// NopStats counts nothing.
type NopStats struct{}

// Inc implements Stats.
func (NopStats) Inc(string) {}
