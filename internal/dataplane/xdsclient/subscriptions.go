package xdsclient

import (
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
)

// Subscriptions of the named types are derived from the accepted sets of
// the wildcard ones:
//
//	CDS (wildcard) ──EDS clusters: eds_cluster_config.service_name or name──► EDS names
//	LDS (wildcard) ──HCMs with rds: route_config_name──────────────────────► RDS names
//
// The names are computed once per resource when it is decoded (resource.deps)
// and unioned over the accepted set when the set changes.

// clusterDeps returns the EDS name of an EDS cluster, none for others.
func clusterDeps(m proto.Message) ([]string, error) {
	c := m.(*clusterv3.Cluster)
	if c.GetType() != clusterv3.Cluster_EDS {
		return nil, nil
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return []string{n}, nil
	}
	return []string{c.GetName()}, nil
}

// listenerDeps unpacks and validates every HttpConnectionManager of a
// listener (filter chains, default filter chain, API listener) and returns
// the route_config_name of those using RDS. PGV does not look inside Any,
// so an invalid HCM is caught here, as Envoy would reject the listener.
func listenerDeps(m proto.Message) ([]string, error) {
	l := m.(*listenerv3.Listener)
	var names []string
	add := func(where string, tc *anypb.Any) error {
		h, ok, err := unpackHCM(tc)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if !ok {
			return nil
		}
		if n := h.GetRds().GetRouteConfigName(); n != "" {
			names = append(names, n)
		}
		return nil
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(slices.Clip(chains), d)
	}
	for i, fc := range chains {
		for j, f := range fc.GetFilters() {
			if err := add(fmt.Sprintf("filter chain %d (%q) filter %d (%q)", i, fc.GetName(), j, f.GetName()), f.GetTypedConfig()); err != nil {
				return nil, err
			}
		}
	}
	if err := add("api_listener", l.GetApiListener().GetApiListener()); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// unpackHCM decodes tc if it holds an HttpConnectionManager.
func unpackHCM(tc *anypb.Any) (*hcmv3.HttpConnectionManager, bool, error) {
	h := new(hcmv3.HttpConnectionManager)
	if tc == nil || tc.MessageName() != h.ProtoReflect().Descriptor().FullName() {
		return nil, false, nil
	}
	if err := proto.Unmarshal(tc.GetValue(), h); err != nil {
		return nil, false, fmt.Errorf("unmarshalling http_connection_manager: %w", err)
	}
	if err := pgv.ValidateAll(h); err != nil {
		return nil, false, fmt.Errorf("invalid http_connection_manager: %w", err)
	}
	return h, true, nil
}

// depNames returns the sorted union of the dependency names of a set.
func depNames(set map[string]resource) []string {
	var names []string
	for _, r := range set {
		names = append(names, r.deps...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// diffNames compares two sorted name lists.
func diffNames(old, next []string) (added, removed []string) {
	i, j := 0, 0
	for i < len(old) || j < len(next) {
		switch {
		case j == len(next) || (i < len(old) && old[i] < next[j]):
			removed = append(removed, old[i])
			i++
		case i == len(old) || next[j] < old[i]:
			added = append(added, next[j])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}
