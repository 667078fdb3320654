package sidecar

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// NodeConfig identifies the workload the sidecar serves, as Istio's agent
// does in the node ID and metadata.
type NodeConfig struct {
	// IP is the workload's address (the second node ID field). Required.
	IP string
	// PodName and Namespace make the third field, pod.namespace. Required.
	PodName   string
	Namespace string
	// DomainSuffix is the cluster domain (default cluster.local).
	DomainSuffix string
	// Labels are the workload's labels.
	Labels map[string]string
	// ServiceAccount and WorkloadName, when known.
	ServiceAccount string
	WorkloadName   string
	// MetricsAddress is where the sidecar serves /stats/prometheus (its
	// Config.MetricsAddress); sent as METRICS_ADDRESS so that the control
	// plane's dashboard can scrape it. An empty or wildcard host stands for
	// IP. "" or "-" (disabled) sends nothing.
	MetricsAddress string
	// InterceptionMode is how captured traffic reaches the proxy: REDIRECT
	// (the default when empty), TPROXY or NONE, sent as INTERCEPTION_MODE.
	// With TPROXY the control plane makes the capture listeners
	// transparent.
	InterceptionMode string
}

// Node builds the xDS node: id sidecar~<ip>~<pod>.<ns>~<ns>.svc.<suffix>,
// metadata NAMESPACE, LABELS, INSTANCE_IPS, INTERCEPTION_MODE,
// SERVICE_ACCOUNT, WORKLOAD_NAME and METRICS_ADDRESS.
func (n NodeConfig) Node() (*corev3.Node, error) {
	ip, err := netip.ParseAddr(n.IP)
	if err != nil {
		return nil, fmt.Errorf("node: ip %q: not an IP address", n.IP)
	}
	if n.PodName == "" || n.Namespace == "" {
		return nil, fmt.Errorf("node: pod name and namespace are required")
	}
	suffix := n.DomainSuffix
	if suffix == "" {
		suffix = "cluster.local"
	}
	labels := map[string]any{}
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		labels[k] = n.Labels[k]
	}
	mode := n.InterceptionMode
	switch mode {
	case "":
		mode = "REDIRECT"
	case "REDIRECT", "TPROXY", "NONE":
	default:
		return nil, fmt.Errorf("node: interception mode %q: want REDIRECT, TPROXY or NONE", mode)
	}
	meta := map[string]any{
		"NAMESPACE":         n.Namespace,
		"LABELS":            labels,
		"INSTANCE_IPS":      ip.String(),
		"INTERCEPTION_MODE": mode,
	}
	if n.ServiceAccount != "" {
		meta["SERVICE_ACCOUNT"] = n.ServiceAccount
	}
	if n.WorkloadName != "" {
		meta["WORKLOAD_NAME"] = n.WorkloadName
	}
	if a := n.MetricsAddress; a != "" && a != "-" {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("node: metrics address %q: %w", a, err)
		}
		if h, err := netip.ParseAddr(host); host == "" || err == nil && h.IsUnspecified() {
			host = ip.String()
		}
		meta["METRICS_ADDRESS"] = net.JoinHostPort(host, port)
	}
	md, err := structpb.NewStruct(meta)
	if err != nil {
		return nil, fmt.Errorf("node metadata: %w", err)
	}
	return &corev3.Node{
		Id:       strings.Join([]string{"sidecar", ip.String(), n.PodName + "." + n.Namespace, n.Namespace + ".svc." + suffix}, "~"),
		Metadata: md,
	}, nil
}

// ParseLabels parses "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
