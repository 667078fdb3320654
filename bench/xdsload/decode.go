package main

import (
	"bytes"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// clusterNames lists the EDS clusters of a CDS response.
func clusterNames(resp *discovery.DiscoveryResponse) []string {
	var out []string
	for _, a := range resp.GetResources() {
		var c cluster.Cluster
		if proto.Unmarshal(a.GetValue(), &c) != nil {
			continue
		}
		if c.GetType() == cluster.Cluster_EDS {
			out = append(out, c.GetName())
		}
	}
	return out
}

// routeNames lists the RDS route names referenced by an LDS response.
func routeNames(resp *discovery.DiscoveryResponse) []string {
	seen := map[string]bool{}
	var out []string
	add := func(fs []*listener.Filter) {
		for _, f := range fs {
			var h hcm.HttpConnectionManager
			if f.GetTypedConfig() == nil || f.GetTypedConfig().UnmarshalTo(&h) != nil {
				continue
			}
			if n := h.GetRds().GetRouteConfigName(); n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, a := range resp.GetResources() {
		var l listener.Listener
		if proto.Unmarshal(a.GetValue(), &l) != nil {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			add(fc.GetFilters())
		}
		if dfc := l.GetDefaultFilterChain(); dfc != nil {
			add(dfc.GetFilters())
		}
	}
	return out
}

// findMarker returns the round marker carried in a marshalled route
// configuration ("round-N"), or "".
func findMarker(b []byte) string {
	i := bytes.Index(b, []byte("round-"))
	if i < 0 {
		return ""
	}
	j := i + len("round-")
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	return string(b[i:j])
}
