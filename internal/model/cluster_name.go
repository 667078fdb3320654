package model

import (
	"strconv"
	"strings"
)

// ClusterKey is a parsed Istio cluster name, direction|port|subset|host.
// Inbound cluster names carry no host ("inbound|9080||").
type ClusterKey struct {
	Direction string
	Port      uint32
	Subset    string
	Host      string
}

// ParseClusterName parses a name built by ClusterName. It reports false for
// names of another form (BlackHoleCluster, PassthroughCluster, ...) and for
// unknown directions or invalid ports.
func ParseClusterName(name string) (ClusterKey, bool) {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 || (parts[0] != Outbound && parts[0] != Inbound) {
		return ClusterKey{}, false
	}
	port, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || port == 0 {
		return ClusterKey{}, false
	}
	return ClusterKey{Direction: parts[0], Port: uint32(port), Subset: parts[2], Host: parts[3]}, true
}
