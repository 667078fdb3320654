package proxyconfig

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// Filter names whose config the listener table reads.
const (
	hcmFilter      = "envoy.filters.network.http_connection_manager"
	tcpProxyFilter = "envoy.filters.network.tcp_proxy"
)

// ListenerTable lists one row per filter chain (the default chain last),
// sorted by port then address: ADDRESSES, PORT, MATCH, DESTINATION, as
// istioctl proxy-config listeners prints them. f.Port and f.Address
// narrow it.
func ListenerTable(d *Dump, f Filter) Table {
	t := Table{Header: []string{"ADDRESSES", "PORT", "MATCH", "DESTINATION"}}
	type row struct {
		port  uint32
		addrs string
		cells []string
	}
	var rows []row
	for _, l := range d.Listeners {
		addrs, port := listenerAddresses(l)
		if f.Port != 0 && port != f.Port {
			continue
		}
		if f.Address != "" && !slices.Contains(strings.Split(addrs, ","), f.Address) {
			continue
		}
		chains := slices.Clone(l.GetFilterChains())
		if dc := l.GetDefaultFilterChain(); dc != nil {
			chains = append(chains, dc)
		}
		for _, fc := range chains {
			rows = append(rows, row{port, addrs, []string{addrs, portString(port), chainMatch(fc.GetFilterChainMatch()), chainDestination(fc.GetFilters())}})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.port, b.port), strings.Compare(a.addrs, b.addrs))
	})
	for _, r := range rows {
		t.Rows = append(t.Rows, r.cells)
	}
	return t
}

// listenerAddresses returns the listener's IPs (its address and additional
// addresses, comma-separated) and port; a pipe's path stands for the IP.
func listenerAddresses(l *listenerv3.Listener) (string, uint32) {
	ip, port := socketAddress(l.GetAddress())
	ips := []string{ip}
	for _, a := range l.GetAdditionalAddresses() {
		if extra, _ := socketAddress(a.GetAddress()); extra != "" {
			ips = append(ips, extra)
		}
	}
	return strings.Join(ips, ","), port
}

func socketAddress(a *corev3.Address) (string, uint32) {
	if sa := a.GetSocketAddress(); sa != nil {
		return sa.GetAddress(), sa.GetPortValue()
	}
	if p := a.GetPipe(); p != nil {
		return p.GetPath(), 0
	}
	if ia := a.GetEnvoyInternalAddress(); ia != nil {
		return "internal:" + ia.GetServerListenerName(), 0
	}
	return "", 0
}

func portString(p uint32) string {
	if p == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(p), 10)
}

// chainMatch describes a filter chain match as istioctl does: SNI,
// transport and application protocols, destination addresses and port,
// or ALL.
func chainMatch(m *listenerv3.FilterChainMatch) string {
	var parts []string
	if sn := m.GetServerNames(); len(sn) > 0 {
		parts = append(parts, "SNI: "+strings.Join(sn, ","))
	}
	if tp := m.GetTransportProtocol(); tp != "" {
		parts = append(parts, "Trans: "+tp)
	}
	if ap := m.GetApplicationProtocols(); len(ap) > 0 {
		parts = append(parts, "App: "+strings.Join(ap, ","))
	}
	port := ""
	if m.GetDestinationPort() != nil {
		port = fmt.Sprintf(":%d", m.GetDestinationPort().GetValue())
	}
	if pr := m.GetPrefixRanges(); len(pr) > 0 {
		cidrs := make([]string, 0, len(pr))
		for _, r := range pr {
			cidrs = append(cidrs, fmt.Sprintf("%s/%d", r.GetAddressPrefix(), r.GetPrefixLen().GetValue()))
		}
		parts = append(parts, "Addr: "+strings.Join(cidrs, ",")+port)
	} else if port != "" {
		parts = append(parts, "Addr: *"+port)
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, "; ")
}

// chainDestination describes where a filter chain sends traffic: its HTTP
// route configuration, its TCP cluster(s), or Non-HTTP/Non-TCP.
func chainDestination(filters []*listenerv3.Filter) string {
	for _, fl := range filters {
		switch fl.GetName() {
		case hcmFilter:
			var hcm hcmv3.HttpConnectionManager
			if fl.GetTypedConfig().UnmarshalTo(&hcm) != nil {
				return "HTTP"
			}
			if rds := hcm.GetRds(); rds != nil {
				return "Route: " + rds.GetRouteConfigName()
			}
			if rc := hcm.GetRouteConfig(); rc != nil {
				if vh := rc.GetVirtualHosts(); len(vh) == 1 {
					var matches []string
					for _, r := range vh[0].GetRoutes() {
						matches = append(matches, routeMatch(r.GetMatch()))
					}
					return "Inline Route: " + strings.Join(matches, ", ")
				}
				return "Inline Route: " + rc.GetName()
			}
			return "HTTP"
		case tcpProxyFilter:
			var tp tcpv3.TcpProxy
			if fl.GetTypedConfig().UnmarshalTo(&tp) != nil {
				return "TCP"
			}
			if c := tp.GetCluster(); c != "" {
				if strings.Contains(c, "Cluster") {
					return c // PassthroughCluster, BlackHoleCluster, ...
				}
				return "Cluster: " + c
			}
			if wc := tp.GetWeightedClusters(); wc != nil {
				var parts []string
				for _, c := range wc.GetClusters() {
					parts = append(parts, fmt.Sprintf("%s(%d)", c.GetName(), c.GetWeight()))
				}
				return "WeightedCluster: " + strings.Join(parts, ",")
			}
			return "TCP"
		}
	}
	return "Non-HTTP/Non-TCP"
}
