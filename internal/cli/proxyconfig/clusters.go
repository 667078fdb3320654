package proxyconfig

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// ClusterName is an Istio cluster name taken apart:
// direction|port|subset|fqdn ("outbound|9080|v1|reviews.default.svc.cluster.local").
// Other names (PassthroughCluster, BlackHoleCluster, ...) are all FQDN.
type ClusterName struct {
	Direction string
	Port      uint32
	Subset    string
	FQDN      string
}

// ParseClusterName splits an Istio cluster name.
func ParseClusterName(name string) ClusterName {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return ClusterName{FQDN: name}
	}
	port, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return ClusterName{FQDN: name}
	}
	return ClusterName{Direction: parts[0], Port: uint32(port), Subset: parts[2], FQDN: parts[3]}
}

// ClusterTable lists the clusters sorted by FQDN, port, subset and
// direction: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE,
// as istioctl proxy-config clusters prints them. f.FQDN, f.Port, f.Subset
// and f.Direction narrow it.
func ClusterTable(d *Dump, f Filter) Table {
	t := Table{Header: []string{"SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"}}
	type row struct {
		n     ClusterName
		cells []string
	}
	var rows []row
	for _, c := range d.Clusters {
		n := ParseClusterName(c.GetName())
		if (f.FQDN != "" && n.FQDN != f.FQDN) || (f.Port != 0 && n.Port != f.Port) ||
			(f.Subset != "" && n.Subset != f.Subset) || (f.Direction != "" && n.Direction != f.Direction) {
			continue
		}
		rows = append(rows, row{n, []string{n.FQDN, portString(n.Port), dash(n.Subset), dash(n.Direction), clusterType(c), configRef(c.GetMetadata())}})
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		return cmp.Or(strings.Compare(a.n.FQDN, b.n.FQDN), cmp.Compare(a.n.Port, b.n.Port),
			strings.Compare(a.n.Subset, b.n.Subset), strings.Compare(a.n.Direction, b.n.Direction))
	})
	for _, r := range rows {
		t.Rows = append(t.Rows, r.cells)
	}
	return t
}

// clusterType is the discovery type (EDS, STATIC, ORIGINAL_DST, ...) or
// the custom cluster type's name.
func clusterType(c *clusterv3.Cluster) string {
	if ct := c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.GetType().String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
