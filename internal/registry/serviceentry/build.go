package serviceentry

import (
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// inputs are the objects of one namespace, by name. They are owned by the
// Registry's writer and only touched under Registry.mu, where
// buildNamespace reads them too.
type inputs struct {
	serviceEntries  map[string]config.Config
	workloadEntries map[string]config.Config
	workloadGroups  map[string]config.Config
}

func (in inputs) empty() bool {
	return len(in.serviceEntries) == 0 && len(in.workloadEntries) == 0 && len(in.workloadGroups) == 0
}

// nsState is the derived state of one namespace. Immutable once built.
type nsState struct {
	services  map[model.ServiceKey]*model.Service
	endpoints map[model.ServiceKey][]*model.Endpoint
}

// buildNamespace derives the services and endpoints of one namespace from
// its objects. It is pure: the same inputs give equal outputs.
func buildNamespace(in inputs) *nsState {
	st := &nsState{
		services:  map[model.ServiceKey]*model.Service{},
		endpoints: map[model.ServiceKey][]*model.Endpoint{},
	}
	workloads := workloadEndpoints(in)
	index := newLabelIndex(workloads)

	ses := slices.Collect(maps.Values(in.serviceEntries))
	slices.SortFunc(ses, func(a, b config.Config) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	seen := map[model.ServiceKey]map[*model.Endpoint]bool{}
	add := func(k model.ServiceKey, eps ...*model.Endpoint) {
		if seen[k] == nil {
			seen[k] = map[*model.Endpoint]bool{}
		}
		for _, ep := range eps {
			if !seen[k][ep] {
				seen[k][ep] = true
				st.endpoints[k] = append(st.endpoints[k], ep)
			}
		}
	}
	for _, se := range ses {
		for _, svc := range ConvertServices(se) {
			k := svc.Key()
			if _, taken := st.services[k]; !taken {
				st.services[k] = svc // the oldest entry declares the service
			}
			add(k, ConvertEndpoints(se, svc)...)
			if svc.Selector == nil {
				continue
			}
			for _, ep := range index.candidates(workloads, svc.Selector) {
				if model.LabelsMatch(svc.Selector, ep.Labels) {
					add(k, ep)
				}
			}
		}
	}
	for k, eps := range st.endpoints {
		if _, ok := st.services[k]; !ok {
			delete(st.endpoints, k)
			continue
		}
		model.SortEndpoints(eps)
	}
	return st
}

// labelIndex lists, for each label pair, the workloads carrying it, so a
// selector is matched against the few workloads with its rarest pair
// rather than against every workload of the namespace.
type labelIndex map[string][]*model.Endpoint

func newLabelIndex(workloads []*model.Endpoint) labelIndex {
	idx := labelIndex{}
	for _, ep := range workloads {
		for k, v := range ep.Labels {
			idx[k+"="+v] = append(idx[k+"="+v], ep)
		}
	}
	return idx
}

// candidates returns a superset of the workloads selector matches, in
// workload order: all of them for an empty selector, else those carrying
// the selector's least common pair.
func (idx labelIndex) candidates(all []*model.Endpoint, selector map[string]string) []*model.Endpoint {
	if len(selector) == 0 {
		return all
	}
	var best []*model.Endpoint
	first := true
	for k, v := range selector {
		list := idx[k+"="+v]
		if first || len(list) < len(best) {
			best, first = list, false
		}
	}
	return best
}

// workloadEndpoints converts the namespace's WorkloadEntries, applying the
// WorkloadGroup each one names, sorted by entry name.
func workloadEndpoints(in inputs) []*model.Endpoint {
	names := slices.Sorted(maps.Keys(in.workloadEntries))
	out := make([]*model.Endpoint, 0, len(names))
	for _, n := range names {
		cfg := in.workloadEntries[n]
		if g := groupOf(cfg); g != "" {
			if wg, ok := in.workloadGroups[g]; ok {
				cfg = applyGroup(cfg, asGroup(wg))
			}
		}
		if ep := ConvertWorkloadEntry(cfg); ep != nil {
			out = append(out, ep)
		}
	}
	return out
}

func asGroup(cfg config.Config) *networking.WorkloadGroup {
	wg, _ := cfg.Spec.(*networking.WorkloadGroup)
	return wg
}

// diff compares two states of one namespace (either may be nil) and returns
// the keys whose service changed (added, removed, different) and the keys
// whose service is unchanged but whose endpoints changed, both sorted.
func diff(old, cur *nsState) (services, endpointsOnly []model.ServiceKey) {
	if old == nil {
		old = &nsState{}
	}
	if cur == nil {
		cur = &nsState{}
	}
	keys := map[model.ServiceKey]bool{}
	for k := range old.services {
		keys[k] = true
	}
	for k := range cur.services {
		keys[k] = true
	}
	for k := range keys {
		switch {
		case !serviceEqual(old.services[k], cur.services[k]):
			services = append(services, k)
		case !endpointsEqual(old.endpoints[k], cur.endpoints[k]):
			endpointsOnly = append(endpointsOnly, k)
		}
	}
	sortKeys(services)
	sortKeys(endpointsOnly)
	return services, endpointsOnly
}

func sortKeys(ks []model.ServiceKey) {
	slices.SortFunc(ks, func(a, b model.ServiceKey) int {
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace, b.Namespace)
	})
}

func serviceEqual(a, b *model.Service) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Hostname == b.Hostname &&
		a.Namespace == b.Namespace &&
		slices.Equal(a.Addresses, b.Addresses) &&
		slices.Equal(a.Ports, b.Ports) &&
		a.Resolution == b.Resolution &&
		a.MeshExternal == b.MeshExternal &&
		slices.Equal(a.ExportTo, b.ExportTo) &&
		maps.Equal(a.Labels, b.Labels) &&
		(a.Selector == nil) == (b.Selector == nil) &&
		maps.Equal(a.Selector, b.Selector) &&
		slices.Equal(a.ServiceAccounts, b.ServiceAccounts) &&
		a.Source == b.Source &&
		a.CreationTimestamp.Equal(b.CreationTimestamp)
}

func endpointsEqual(a, b []*model.Endpoint) bool {
	return slices.EqualFunc(a, b, endpointEqual)
}

func endpointEqual(a, b *model.Endpoint) bool {
	return a.Address == b.Address &&
		maps.Equal(a.Ports, b.Ports) &&
		maps.Equal(a.Labels, b.Labels) &&
		a.Network == b.Network &&
		a.Locality == b.Locality &&
		a.Weight == b.Weight &&
		a.ServiceAccount == b.ServiceAccount &&
		a.Namespace == b.Namespace &&
		a.WorkloadName == b.WorkloadName &&
		a.TLSMode == b.TLSMode
}
