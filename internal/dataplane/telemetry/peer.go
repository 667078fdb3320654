package telemetry

import (
	"strconv"
	"strings"
	"unique"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Unknown is the value of a label whose value the proxy does not know, as
// Istio reports it.
const Unknown = "unknown"

// istioKey is the filter_metadata key of Istio's cluster and endpoint
// metadata.
const istioKey = "istio"

// Workload is one side of a request as Istio's labels describe it. Empty
// fields are reported as "unknown".
type Workload struct {
	Name              string
	Namespace         string
	Principal         string
	App               string
	Version           string
	CanonicalService  string
	CanonicalRevision string
	Cluster           string
}

// LocalWorkload derives the local workload from the xDS node as the
// sidecar builds it (metadata NAMESPACE, LABELS, WORKLOAD_NAME, CLUSTER_ID;
// id sidecar~ip~pod.ns~ns.svc.suffix). The principal is left empty: the
// caller sets it to the workload's SPIFFE ID when the proxy has an
// identity (it comes from the CA configuration, not from the node).
func LocalWorkload(n *corev3.Node) Workload {
	md := n.GetMetadata().GetFields()
	labels := map[string]string{}
	for k, v := range md["LABELS"].GetStructValue().GetFields() {
		labels[k] = v.GetStringValue()
	}
	w := Workload{
		Namespace: md["NAMESPACE"].GetStringValue(),
		Name:      md["WORKLOAD_NAME"].GetStringValue(),
		Cluster:   md["CLUSTER_ID"].GetStringValue(),
		App:       first(labels, "app", "app.kubernetes.io/name"),
		Version:   first(labels, "version", "app.kubernetes.io/version"),
	}
	parts := strings.Split(n.GetId(), "~")
	if w.Name == "" && len(parts) == 4 {
		// The pod name: the third field is pod.namespace.
		w.Name = strings.TrimSuffix(parts[2], "."+w.Namespace)
	}
	if w.Namespace == "" && len(parts) == 4 {
		if _, ns, ok := strings.Cut(parts[2], "."); ok {
			w.Namespace = ns
		}
	}
	w.CanonicalService = first(labels, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
	if w.CanonicalService == "" {
		w.CanonicalService = w.Name
	}
	w.CanonicalRevision = first(labels, "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")
	if w.CanonicalRevision == "" {
		w.CanonicalRevision = "latest"
	}
	return w
}

func first(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}

// Service is the destination service of a cluster.
type Service struct {
	Host      string // destination_service
	Name      string // destination_service_name
	Namespace string // destination_service_namespace
}

// metadata is what the control plane tells about clusters and endpoints,
// replaced as a whole on every CDS/EDS update.
type metadata struct {
	services map[string]Service // by cluster name
	// edsName maps a cluster's EDS service name to the cluster's name.
	edsName map[string]string
	// workloads of each cluster's endpoints, by cluster name; each
	// builds its map by host on its first look-up.
	workloads map[string]*clusterWorkloads
}

// clusterService reads a cluster's service: Istio's filter_metadata
// istio.services[0] {host, name, namespace}, else parsed from the name
// outbound|port|subset|host. The fields are canonical copies, not the
// decoded message's strings.
func clusterService(c *clusterv3.Cluster) (Service, bool) {
	s, ok := Service{}, false
	svcs := c.GetMetadata().GetFilterMetadata()[istioKey].GetFields()["services"].GetListValue().GetValues()
	if len(svcs) > 0 {
		f := svcs[0].GetStructValue().GetFields()
		s = Service{Host: f["host"].GetStringValue(), Name: f["name"].GetStringValue(), Namespace: f["namespace"].GetStringValue()}
		if ok = s.Host != ""; ok && s.Name == "" {
			s.Name = s.Host
		}
	}
	if !ok {
		s, ok = serviceFromName(c.GetName())
	}
	return Service{Host: canonical(s.Host), Name: canonical(s.Name), Namespace: canonical(s.Namespace)}, ok
}

// serviceFromName parses outbound|port|subset|host; the name and
// namespace come from a Kubernetes host name.svc.ns.<domain>, else the name
// is the host and the namespace unknown.
func serviceFromName(cluster string) (Service, bool) {
	rest, ok := strings.CutPrefix(cluster, "outbound|")
	if !ok {
		return Service{}, false
	}
	// port|subset|host, cut without allocating: it runs per request.
	_, rest, ok1 := strings.Cut(rest, "|")
	_, host, ok2 := strings.Cut(rest, "|")
	if !ok1 || !ok2 || host == "" {
		return Service{}, false
	}
	s := Service{Host: host, Name: host}
	if name, rest, ok := strings.Cut(host, "."); ok {
		if ns, rest, ok := strings.Cut(rest, "."); ok && (rest == "svc" || strings.HasPrefix(rest, "svc.")) {
			s.Name, s.Namespace = name, ns
		}
	}
	return s, true
}

// endpointWorkload parses Istio's endpoint metadata istio.workload (see
// parseWorkload); false if the endpoint has none. The fields are
// substrings of the decoded message.
func endpointWorkload(md *corev3.Metadata) (Workload, bool) {
	v := workloadValue(md)
	if v == "" {
		return Workload{}, false
	}
	return parseWorkload(v), true
}

// workloadValue is an endpoint's istio.workload metadata, "" if none.
func workloadValue(md *corev3.Metadata) string {
	return md.GetFilterMetadata()[istioKey].GetFields()["workload"].GetStringValue()
}

// parseWorkload parses an istio.workload value, "name;namespace;canonical
// service;canonical revision;cluster" (as Istio's proxy does, app and
// version are not part of it). The fields are substrings of v.
func parseWorkload(v string) Workload {
	var p [5]string
	for i := range p {
		p[i], v, _ = strings.Cut(v, ";")
	}
	return Workload{Name: p[0], Namespace: p[1], CanonicalService: p[2], CanonicalRevision: p[3], Cluster: p[4]}
}

// canonical returns the shared copy of a label value taken from a
// decoded message, never a substring of it.
func canonical(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// hostOnly strips the port of an authority.
func hostOnly(authority string) string {
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.HasSuffix(authority, "]") {
		if _, err := strconv.Atoi(authority[i+1:]); err == nil {
			authority = authority[:i]
		}
	}
	return authority
}
