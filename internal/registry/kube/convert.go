package kube

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// Labels and annotations read from the cluster, as Istio names them.
const (
	annotationExportTo = "networking.istio.io/exportTo"
	labelTLSMode       = "security.istio.io/tlsMode"
	labelNetwork       = "topology.istio.io/network"
	labelSubzone       = "topology.istio.io/subzone"
	labelLocality      = "istio-locality"
	labelPodTemplate   = "pod-template-hash"
)

// serviceKind is the config kind recorded as a Kubernetes service's Source.
var serviceKind = config.GroupKind{Group: "", Kind: "Service"}

// wellKnownPorts are ports Istio treats as TCP when neither appProtocol nor
// the port name declares a protocol: sniffing would break SMTP, DNS, MySQL
// and MongoDB, whose servers speak first.
var wellKnownPorts = map[int32]bool{25: true, 53: true, 3306: true, 27017: true}

// Protocol selects a Service port's protocol as Istio does: UDP ports are
// UDP; otherwise appProtocol when set (with Kubernetes' standard
// kubernetes.io/h2c, /ws and /wss names), else the port name's
// <protocol>[-suffix] prefix; undeclared protocols on well-known
// server-first ports are TCP, the rest UnsupportedProtocol (sniffed).
func Protocol(p corev1.ServicePort) model.Protocol {
	if p.Protocol == corev1.ProtocolUDP {
		return model.ProtocolUDP
	}
	name := p.Name
	if p.AppProtocol != nil {
		name = *p.AppProtocol
		switch name {
		case "kubernetes.io/h2c":
			return model.ProtocolHTTP2
		case "kubernetes.io/ws":
			return model.ProtocolHTTP
		case "kubernetes.io/wss":
			return model.ProtocolHTTPS
		}
	}
	proto := model.ProtocolFromPortName(name)
	if proto.IsUnsupported() && wellKnownPorts[p.Port] {
		return model.ProtocolTCP
	}
	return proto
}

// Hostname is a Service's fully qualified name.
func Hostname(name, namespace, domain string) string {
	return name + "." + namespace + ".svc." + domain
}

// ConvertService turns a Service into a model.Service:
//
//   - ClusterIP services keep their cluster IPs (dual-stack: both) and are
//     balanced client-side; headless ones (clusterIP None) have no address
//     and Passthrough resolution; ExternalName ones resolve their external
//     name by DNS and are mesh-external.
//   - Ports keep name and number; the protocol comes from Protocol; a
//     numeric targetPort becomes TargetPort (a named one is resolved per
//     endpoint by the EndpointSlice).
//   - networking.istio.io/exportTo is resolved like a ServiceEntry's.
//   - spec.selector becomes Selector; labels and creation time are kept.
func ConvertService(svc *corev1.Service, domain string) *model.Service {
	out := &model.Service{
		Hostname:          Hostname(svc.Name, svc.Namespace, domain),
		Namespace:         svc.Namespace,
		Resolution:        model.ClientSideLB,
		Labels:            copyMap(svc.Labels),
		Selector:          copyMap(svc.Spec.Selector),
		Source:            config.Key{Kind: serviceKind, Namespace: svc.Namespace, Name: svc.Name},
		CreationTimestamp: svc.CreationTimestamp.Time,
		ExportTo:          exportTo(svc.Annotations[annotationExportTo], svc.Namespace),
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName && svc.Spec.ExternalName != "":
		out.Resolution = model.DNSLB
		out.MeshExternal = true
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		out.Resolution = model.Passthrough
	default:
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if ip != "" && ip != corev1.ClusterIPNone {
				out.Addresses = append(out.Addresses, ip)
			}
		}
	}
	for _, p := range svc.Spec.Ports {
		port := model.Port{Name: p.Name, Number: uint32(p.Port), Protocol: Protocol(p)}
		if p.TargetPort.IntVal > 0 && p.TargetPort.StrVal == "" {
			port.TargetPort = uint32(p.TargetPort.IntVal)
		}
		out.Ports = append(out.Ports, port)
	}
	slices.SortStableFunc(out.Ports, func(a, b model.Port) int { return int(a.Number) - int(b.Number) })
	return out
}

// exportTo resolves the exportTo annotation (comma-separated): "." is the
// service's namespace; the result is sorted and deduplicated; empty means
// the mesh default.
func exportTo(annotation, namespace string) []string {
	var out []string
	for _, v := range strings.Split(annotation, ",") {
		v = strings.TrimSpace(v)
		switch v {
		case "":
			continue
		case ".":
			v = namespace
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Health is an EndpointSlice endpoint's state, as Istio classifies it.
type Health int

// Health states.
const (
	// Healthy: ready (or readiness unknown). Published as HEALTHY.
	Healthy Health = iota
	// Draining: not ready but still serving while terminating. Published
	// as DRAINING for services that use persistent sessions (Istio's
	// SupportsDrainingEndpoints: a label LabelPersistentSession or
	// LabelPersistentSessionHeader on the Service), where a pinned client
	// may keep using it; proxies send it no new requests. Elsewhere it is
	// treated as Terminating.
	Draining
	// Terminating: shutting down and no longer serving. Never published.
	Terminating
	// Unhealthy: not ready. Published as UNHEALTHY only when
	// Config.SendUnhealthyEndpoints is set (Istio's
	// PILOT_SEND_UNHEALTHY_ENDPOINTS); otherwise left out.
	Unhealthy
)

// The Service labels that mark persistent-session services (Istio's
// PERSISTENT_SESSION_LABEL and PERSISTENT_SESSION_HEADER_LABEL defaults).
const (
	LabelPersistentSession       = "istio.io/persistent-session"
	LabelPersistentSessionHeader = "istio.io/persistent-session-header"
)

// EndpointHealth classifies an endpoint from its conditions as Istio does:
// ready (or unset) is Healthy; otherwise serving and terminating is
// Draining, terminating alone Terminating, anything else Unhealthy. An
// unset serving or terminating condition counts as true once ready is
// false (Istio's reading of the EndpointSlice API).
func EndpointHealth(c discoveryv1.EndpointConditions) Health {
	if c.Ready == nil || *c.Ready {
		return Healthy
	}
	serving := c.Serving == nil || *c.Serving
	terminating := c.Terminating == nil || *c.Terminating
	switch {
	case serving && terminating:
		return Draining
	case terminating:
		return Terminating
	}
	return Unhealthy
}

// publish says which endpoints besides the healthy ones a service's EDS
// carries.
type publish struct {
	draining  bool // the service uses persistent sessions
	unhealthy bool // Config.SendUnhealthyEndpoints
}

// publishFor returns the publishing rules of a Service.
func publishFor(svc *corev1.Service, sendUnhealthy bool) publish {
	return publish{
		draining:  svc.Labels[LabelPersistentSession] != "" || svc.Labels[LabelPersistentSessionHeader] != "",
		unhealthy: sendUnhealthy,
	}
}

// modelHealth maps an endpoint's state to what is published, or false
// when it is left out.
func (p publish) modelHealth(h Health) (model.Health, bool) {
	switch h {
	case Healthy:
		return model.Healthy, true
	case Draining:
		if p.draining {
			return model.Draining, true
		}
	case Unhealthy:
		if p.unhealthy {
			return model.Unhealthy, true
		}
	}
	return 0, false
}

// lookup gives endpoint building access to the cluster's other objects.
type lookup struct {
	pod  func(ns, name string) *corev1.Pod
	node func(name string) *corev1.Node
	// network is the cluster's default network (the system namespace's
	// topology.istio.io/network label).
	network string
}

// convertEndpoints builds a service's endpoints from the EndpointSlices of
// its Kubernetes Service. Endpoints of IPv4/IPv6 slices are kept when pub
// publishes their state (FQDN slices are ignored, as in Istio), with their
// model.Health. An endpoint whose targetRef
// is a Pod the cache does not know yet is skipped: it is added when the Pod
// arrives. Each address is one endpoint, with the slice's ports mapped by
// name; labels, service account, workload name, TLS mode, network and
// locality come from the Pod and its Node.
func convertEndpoints(eslices []*discoveryv1.EndpointSlice, lk lookup, pub publish) []*model.Endpoint {
	var out []*model.Endpoint
	seen := map[string]int{} // endpoint key -> index in out
	for _, es := range eslices {
		if es.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		ports := map[string]uint32{}
		for _, p := range es.Ports {
			if p.Port != nil && p.Name != nil {
				ports[*p.Name] = uint32(*p.Port)
			} else if p.Port != nil {
				ports[""] = uint32(*p.Port)
			}
		}
		for _, e := range es.Endpoints {
			health, ok := pub.modelHealth(EndpointHealth(e.Conditions))
			if !ok {
				continue
			}
			var pod *corev1.Pod
			if ref := e.TargetRef; ref != nil && ref.Kind == "Pod" {
				ns := ref.Namespace
				if ns == "" {
					ns = es.Namespace
				}
				if pod = lk.pod(ns, ref.Name); pod == nil {
					continue
				}
			}
			nodeName := ""
			if e.NodeName != nil {
				nodeName = *e.NodeName
			}
			for _, addr := range e.Addresses {
				ep := endpoint(addr, es.Namespace, ports, pod, nodeName, lk)
				ep.Health = health
				if i, ok := seen[ep.Key()]; ok {
					// The same address in two slices while it moves
					// between them: the healthier state wins.
					if out[i].Health != model.Healthy && ep.Health == model.Healthy {
						out[i] = ep
					}
					continue
				}
				seen[ep.Key()] = len(out)
				out = append(out, ep)
			}
		}
	}
	model.SortEndpoints(out)
	return out
}

func endpoint(addr, namespace string, ports map[string]uint32, pod *corev1.Pod, nodeName string, lk lookup) *model.Endpoint {
	ep := &model.Endpoint{
		Address:   addr,
		Ports:     ports,
		Namespace: namespace,
		TLSMode:   "disabled",
		Network:   lk.network,
	}
	if pod == nil {
		ep.Locality = nodeLocality(lk.node(nodeName))
		return ep
	}
	ep.Labels = copyMap(pod.Labels)
	ep.Namespace = pod.Namespace
	ep.ServiceAccount = pod.Spec.ServiceAccountName
	ep.WorkloadName = WorkloadName(pod)
	if m := pod.Labels[labelTLSMode]; m != "" {
		ep.TLSMode = m
	}
	if n := pod.Labels[labelNetwork]; n != "" {
		ep.Network = n
	}
	if nodeName == "" {
		nodeName = pod.Spec.NodeName
	}
	if l := pod.Labels[labelLocality]; l != "" {
		ep.Locality = strings.ReplaceAll(l, ".", "/")
	} else {
		ep.Locality = nodeLocality(lk.node(nodeName))
	}
	return ep
}

// nodeLocality is region/zone/subzone from a Node's
// topology.kubernetes.io/region and /zone labels and Istio's
// topology.istio.io/subzone; "" when the node is unknown or unlabelled.
func nodeLocality(n *corev1.Node) string {
	if n == nil {
		return ""
	}
	region := n.Labels[corev1.LabelTopologyRegion]
	zone := n.Labels[corev1.LabelTopologyZone]
	sub := n.Labels[labelSubzone]
	if region == "" && zone == "" && sub == "" {
		return ""
	}
	return strings.TrimRight(region+"/"+zone+"/"+sub, "/")
}

// WorkloadName names a Pod's workload as Istio does: the Deployment of a
// ReplicaSet-owned Pod (the ReplicaSet name without its pod-template-hash
// suffix), else the controlling owner's name, else the Pod's name.
func WorkloadName(p *corev1.Pod) string {
	for _, ref := range p.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		if ref.Kind == "ReplicaSet" {
			if h := p.Labels[labelPodTemplate]; h != "" {
				if name, ok := strings.CutSuffix(ref.Name, "-"+h); ok {
					return name
				}
			}
		}
		return ref.Name
	}
	return p.Name
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
