package model

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// ProxyType is the role of a proxy, the first field of its node ID.
type ProxyType string

// Proxy roles, as in Istio node IDs.
const (
	SidecarProxy ProxyType = "sidecar"
	Router       ProxyType = "router" // gateways
	Waypoint     ProxyType = "waypoint"
	Ztunnel      ProxyType = "ztunnel"
)

// Generator names accepted in node metadata GENERATOR.
const (
	GeneratorDefault = ""
	GeneratorGRPC    = "grpc"
)

// Node metadata keys Trellis reads (Istio's names).
const (
	MetaGenerator      = "GENERATOR"
	MetaNamespace      = "NAMESPACE"
	MetaLabels         = "LABELS"
	MetaServiceAccount = "SERVICE_ACCOUNT"
	MetaClusterID      = "CLUSTER_ID"
	MetaNetwork        = "NETWORK"
	MetaInstanceIPs    = "INSTANCE_IPS"
	MetaWorkloadName   = "WORKLOAD_NAME"
	MetaIstioVersion   = "ISTIO_VERSION"
	MetaInterception   = "INTERCEPTION_MODE"
)

// MetaMetricsAddress is Trellis's own node metadata key (Istio has none):
// the host:port where the proxy serves Istio's standard metrics at
// /stats/prometheus. The control plane's dashboard scrapes it. An empty or
// unspecified host (":15020", "0.0.0.0:15020") means the proxy's first IP.
const MetaMetricsAddress = "METRICS_ADDRESS"

// Proxy is a connected xDS client as the control plane understands it. It is
// built once per stream from the first request's Node and not mutated after.
type Proxy struct {
	// ID is the full node ID: type~ip~id~domain.
	ID   string
	Type ProxyType
	// IPAddresses are the workload's addresses (first field of the ID, plus
	// INSTANCE_IPS), sorted, deduplicated.
	IPAddresses []string
	// Name is the third ID field (pod.namespace for sidecars).
	Name string
	// Namespace is the proxy's config namespace.
	Namespace string
	// DNSDomain is the fourth ID field (<ns>.svc.cluster.local).
	DNSDomain      string
	Labels         map[string]string
	ServiceAccount string
	ClusterID      string
	Network        string
	WorkloadName   string
	// Generator selects the generator set (""= Envoy-style, "grpc").
	Generator string
	Locality  string
	// MetricsAddress is where the proxy serves its metrics (host:port, the
	// host one of IPAddresses), from METRICS_ADDRESS; "" if not sent.
	MetricsAddress string
	// Metadata keeps every string-valued node metadata field.
	Metadata map[string]string
}

// ParseNode builds a Proxy from an xDS node. It checks the node ID's form
// (type~ip~name~domain) and that the IP is valid.
func ParseNode(node *core.Node) (*Proxy, error) {
	if node == nil {
		return nil, fmt.Errorf("request has no node")
	}
	parts := strings.Split(node.GetId(), "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want 4 fields type~ip~name~domain, got %d", node.GetId(), len(parts))
	}
	p := &Proxy{
		ID:        node.GetId(),
		Type:      ProxyType(parts[0]),
		Name:      parts[2],
		DNSDomain: parts[3],
		Metadata:  map[string]string{},
		Labels:    map[string]string{},
	}
	switch p.Type {
	case SidecarProxy, Router, Waypoint, Ztunnel:
	default:
		return nil, fmt.Errorf("node id %q: unknown proxy type %q", node.GetId(), parts[0])
	}
	ips := map[string]bool{}
	if parts[1] != "" {
		ip, err := netip.ParseAddr(parts[1])
		if err != nil {
			return nil, fmt.Errorf("node id %q: invalid IP %q", node.GetId(), parts[1])
		}
		ips[ip.String()] = true
	}
	if md := node.GetMetadata(); md != nil {
		for k, v := range md.GetFields() {
			switch x := v.GetKind().(type) {
			case *structpb.Value_StringValue:
				p.Metadata[k] = x.StringValue
			case *structpb.Value_StructValue:
				if k == MetaLabels {
					for lk, lv := range x.StructValue.GetFields() {
						p.Labels[lk] = lv.GetStringValue()
					}
				}
			}
		}
	}
	for _, s := range strings.Split(p.Metadata[MetaInstanceIPs], ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("node %q: metadata %s: invalid IP %q", node.GetId(), MetaInstanceIPs, s)
		}
		ips[ip.String()] = true
	}
	for ip := range ips {
		p.IPAddresses = append(p.IPAddresses, ip)
	}
	sort.Strings(p.IPAddresses)

	p.Namespace = p.Metadata[MetaNamespace]
	if p.Namespace == "" {
		// pod.namespace in the name field (pod names may contain dots,
		// namespaces may not), or <ns>.svc.<domain>.
		if i := strings.LastIndexByte(p.Name, '.'); i >= 0 {
			p.Namespace = p.Name[i+1:]
		}
		if ns, _, ok := strings.Cut(p.DNSDomain, "."); ok && p.Namespace == "" {
			p.Namespace = ns
		}
	}
	if p.Namespace == "" {
		return nil, fmt.Errorf("node %q: cannot tell the namespace (set metadata %s or use name pod.namespace)", node.GetId(), MetaNamespace)
	}
	p.ServiceAccount = p.Metadata[MetaServiceAccount]
	p.ClusterID = p.Metadata[MetaClusterID]
	p.Network = p.Metadata[MetaNetwork]
	p.WorkloadName = p.Metadata[MetaWorkloadName]
	p.Generator = p.Metadata[MetaGenerator]
	if a := p.Metadata[MetaMetricsAddress]; a != "" {
		addr, err := metricsAddress(a, p.IPAddresses)
		if err != nil {
			return nil, fmt.Errorf("node %q: metadata %s: %w", node.GetId(), MetaMetricsAddress, err)
		}
		p.MetricsAddress = addr
	}
	if l := node.GetLocality(); l != nil {
		p.Locality = LocalityString(l.GetRegion(), l.GetZone(), l.GetSubZone())
	}
	return p, nil
}

// LocalityString joins region, zone and subzone as Istio writes localities.
func LocalityString(region, zone, subzone string) string {
	s := region
	if zone != "" || subzone != "" {
		s += "/" + zone
	}
	if subzone != "" {
		s += "/" + subzone
	}
	return s
}

// SplitLocality splits region/zone/subzone.
func SplitLocality(l string) (region, zone, subzone string) {
	parts := strings.SplitN(l, "/", 3)
	switch len(parts) {
	case 3:
		return parts[0], parts[1], parts[2]
	case 2:
		return parts[0], parts[1], ""
	}
	return parts[0], "", ""
}

// IsGRPC reports whether the proxy is a proxyless gRPC client.
func (p *Proxy) IsGRPC() bool { return p.Generator == GeneratorGRPC }

// metricsAddress checks a METRICS_ADDRESS value: host:port with an IP host
// that is one of the proxy's addresses, so that the control plane only ever
// fetches metrics from the proxy itself. An empty or unspecified host
// becomes the proxy's first address.
func metricsAddress(a string, ips []string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("%q: want host:port: %w", a, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("%q: invalid port %q", a, port)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("%q: host %q is not an IP address", a, host)
	}
	if ip.IsUnspecified() {
		if len(ips) == 0 {
			return "", fmt.Errorf("%q: unspecified host and the proxy has no IP address", a)
		}
		return net.JoinHostPort(ips[0], port), nil
	}
	if !slices.Contains(ips, ip.Unmap().String()) {
		return "", fmt.Errorf("%q: host %s is not one of the proxy's addresses (%s)", a, ip, strings.Join(ips, ", "))
	}
	return net.JoinHostPort(ip.Unmap().String(), port), nil
}
