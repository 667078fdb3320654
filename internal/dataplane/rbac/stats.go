package rbac

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Stats receives the filters' counters by Envoy stat name
// ("http.rbac.allowed", "tcp.rbac.denied", "http.rbac.istio_dry_run_allow_.shadow_denied").
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
// filter's stat_prefix), joined as Envoy's statPrefixJoin does (a "." is
// added between two parts unless the first ends with one):
// <prefix>.rbac.<rules prefix>.allowed|denied and
// <prefix>.rbac.<shadow prefix>.shadow_allowed|shadow_denied, so
// "tcp." and "istio_dry_run_deny_" give tcp.rbac.allowed and
// tcp.rbac.istio_dry_run_deny_.shadow_denied — the names Istio's stat
// tag extractors (authz_enforce_result, authz_dry_run_action,
// authz_dry_run_result) are written for.
func NewStatNames(prefix, rulesPrefix, shadowPrefix string) StatNames {
	base := statPrefixJoin(prefix, "rbac.")
	rules := statPrefixJoin(base, rulesPrefix)
	shadow := statPrefixJoin(base, shadowPrefix)
	return StatNames{
		Allowed:       statPrefixJoin(rules, "allowed"),
		Denied:        statPrefixJoin(rules, "denied"),
		ShadowAllowed: statPrefixJoin(shadow, "shadow_allowed"),
		ShadowDenied:  statPrefixJoin(shadow, "shadow_denied"),
	}
}

// statPrefixJoin is Envoy's: prefix and token with a "." between them
// unless prefix is empty or already ends with one.
func statPrefixJoin(prefix, token string) string {
	switch {
	case prefix == "":
		return token
	case strings.HasSuffix(prefix, "."):
		return prefix + token
	}
	return prefix + "." + token
}

// NopStats counts nothing.
type NopStats struct{}

// Inc implements Stats.
func (NopStats) Inc(string) {}
