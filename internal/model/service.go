package model

import (
	"sort"
	"strconv"
	"time"

	"github.com/trellismesh/trellis/internal/config"
)

// Resolution says how a service's endpoints are found.
type Resolution int

const (
	// ClientSideLB: endpoints are known (STATIC); the proxy balances over them.
	ClientSideLB Resolution = iota
	// DNSLB: endpoints are host names resolved by the proxy (DNS).
	DNSLB
	// DNSRoundRobinLB: one DNS name, connections spread over its addresses.
	DNSRoundRobinLB
	// Passthrough: traffic goes to the original destination (NONE).
	Passthrough
)

func (r Resolution) String() string {
	switch r {
	case ClientSideLB:
		return "STATIC"
	case DNSLB:
		return "DNS"
	case DNSRoundRobinLB:
		return "DNS_ROUND_ROBIN"
	case Passthrough:
		return "NONE"
	}
	return "unknown"
}

// Port is a service port.
type Port struct {
	Name     string
	Number   uint32
	Protocol Protocol
	// TargetPort is the default endpoint port (0: same as Number).
	TargetPort uint32
}

// ServiceKey identifies a service: the same host name may be declared in
// several namespaces.
type ServiceKey struct {
	Hostname  string
	Namespace string
}

func (k ServiceKey) String() string { return k.Hostname + " (" + k.Namespace + ")" }

// Service is one host name of a ServiceEntry (or, later, a Kubernetes Service).
type Service struct {
	Hostname string
	// Namespace is the namespace of the object that declared the service.
	Namespace string
	// Addresses are virtual IPs or CIDRs (may be empty).
	Addresses    []string
	Ports        []Port // sorted by number
	Resolution   Resolution
	MeshExternal bool
	// ExportTo holds the namespaces the service is visible to, resolved:
	// "*" for all, or namespace names. Empty means the mesh default.
	ExportTo []string
	// Labels are the labels of the declaring object.
	Labels map[string]string
	// Selector, when set, selects workloads (WorkloadEntries) as endpoints.
	Selector map[string]string
	// ServiceAccounts are the identities that may serve the service (SPIFFE
	// URIs or service account names as written).
	ServiceAccounts []string
	// Source is the config object that declared the service.
	Source            config.Key
	CreationTimestamp time.Time
}

// Key returns the service's key.
func (s *Service) Key() ServiceKey { return ServiceKey{Hostname: s.Hostname, Namespace: s.Namespace} }

// Port returns the service port with the given number.
func (s *Service) Port(number uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == number {
			return p, true
		}
	}
	return Port{}, false
}

// PortByName returns the service port with the given name.
func (s *Service) PortByName(name string) (Port, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// Endpoint is one instance of a service.
type Endpoint struct {
	// Address is an IP, a DNS name (DNS resolution) or unix:// path.
	Address string
	// Ports maps service port names to endpoint ports (WorkloadEntry.ports).
	Ports map[string]uint32
	// Labels of the workload (used for subsets and selectors).
	Labels   map[string]string
	Network  string
	Locality string // region/zone/subzone
	// Weight is the load-balancing weight (0 means 1).
	Weight uint32
	// ServiceAccount is the workload's service account name.
	ServiceAccount string
	// Namespace and WorkloadName of the workload (for telemetry and identity).
	Namespace    string
	WorkloadName string
	// TLSMode is "istio" when the workload runs a mesh proxy, else "disabled".
	TLSMode string
	// Health is what EDS reports as the endpoint's health_status.
	Health Health
}

// Health is an endpoint's health as its registry knows it. The zero value
// is Healthy, so registries that only know ready endpoints need not set it.
type Health uint8

// Health states, sent to proxies as EDS health_status HEALTHY, UNHEALTHY
// and DRAINING. Proxies send no new requests to Unhealthy or Draining
// endpoints; a Draining one keeps its established connections.
const (
	Healthy Health = iota
	Unhealthy
	Draining
)

func (h Health) String() string {
	switch h {
	case Healthy:
		return "HEALTHY"
	case Unhealthy:
		return "UNHEALTHY"
	case Draining:
		return "DRAINING"
	}
	return "Health(" + strconv.Itoa(int(h)) + ")"
}

// PortFor returns the endpoint port that serves the service port.
func (e *Endpoint) PortFor(p Port) uint32 {
	if n, ok := e.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// LBWeight returns the endpoint's load-balancing weight (at least 1).
func (e *Endpoint) LBWeight() uint32 {
	if e.Weight == 0 {
		return 1
	}
	return e.Weight
}

// Key returns a stable identity of the endpoint inside its service.
func (e *Endpoint) Key() string { return e.Address + "/" + e.WorkloadName }

// SortEndpoints orders endpoints deterministically.
func SortEndpoints(eps []*Endpoint) {
	sort.SliceStable(eps, func(i, j int) bool {
		if eps[i].Address != eps[j].Address {
			return eps[i].Address < eps[j].Address
		}
		return eps[i].WorkloadName < eps[j].WorkloadName
	})
}

// SortServices orders services by host name, then namespace.
func SortServices(svcs []*Service) {
	sort.SliceStable(svcs, func(i, j int) bool {
		if svcs[i].Hostname != svcs[j].Hostname {
			return svcs[i].Hostname < svcs[j].Hostname
		}
		return svcs[i].Namespace < svcs[j].Namespace
	})
}

// LabelsMatch reports whether every key/value of selector is in labels. An
// empty selector matches everything.
func LabelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// ClusterName builds Istio's cluster name: direction|port|subset|host.
func ClusterName(direction string, port uint32, subset, host string) string {
	return direction + "|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// Traffic directions used in cluster names.
const (
	Outbound = "outbound"
	Inbound  = "inbound"
)
