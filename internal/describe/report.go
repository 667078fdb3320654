package describe

import (
	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/model"
)

// Input is what the descriptions read.
type Input struct {
	// Snapshot holds the configuration, services and endpoints. Required.
	Snapshot *model.Snapshot
	// Messages are the analysis messages of the same configuration; those
	// about the objects a report names are copied into it.
	Messages []analysis.Message
}

// Object names one configuration object.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Source is where it was read (file:document), if known.
	Source string `json:"source,omitempty"`
}

// String is "Kind namespace/name".
func (o Object) String() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// Ref is "namespace/name".
func (o Object) Ref() string { return o.Namespace + "/" + o.Name }

// Viewpoint is the client a service is described for.
type Viewpoint struct {
	Namespace string `json:"namespace"`
	// Workload is the client workload's name ("" for any sidecar of the
	// namespace without labels).
	Workload string            `json:"workload,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Sidecar is the Sidecar resource in force for the client, nil for
	// the mesh default (every host imported).
	Sidecar *Object `json:"sidecar,omitempty"`
}

// Port is a service port.
type Port struct {
	Name       string `json:"name"`
	Number     uint32 `json:"number"`
	Protocol   string `json:"protocol"`
	TargetPort uint32 `json:"targetPort,omitempty"`
}

// Instance is a workload serving a service.
type Instance struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Address        string            `json:"address"`
	Ports          map[string]uint32 `json:"ports,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	// TLSMode is "istio" when the workload runs a mesh proxy.
	TLSMode string `json:"tlsMode,omitempty"`
}

// Destination is one weighted destination of a route.
type Destination struct {
	Host   string `json:"host"`
	Subset string `json:"subset,omitempty"`
	Port   uint32 `json:"port,omitempty"`
	Weight int32  `json:"weight"`
	// Problem says why the destination cannot work as written ("" if it can).
	Problem string `json:"problem,omitempty"`
}

// Route is one HTTP, TLS or TCP route of a VirtualService.
type Route struct {
	// Kind is http, tls or tcp; Index the route's position in that list.
	Kind  string `json:"kind"`
	Index int    `json:"index"`
	Name  string `json:"name,omitempty"`
	// Match holds one line per match block (blocks are ORed, conditions in
	// a line ANDed); empty matches every request.
	Match        []string      `json:"match,omitempty"`
	Destinations []Destination `json:"destinations,omitempty"`
	// Actions are the route's other effects, one line each: redirect,
	// direct response, rewrite, timeout, retries, fault, mirror, headers,
	// delegate.
	Actions []string `json:"actions,omitempty"`
}

// VirtualService is a VirtualService whose hosts cover the service, and
// whether (and why) it shapes the client's routes to it.
type VirtualService struct {
	Object
	Applies bool   `json:"applies"`
	Reason  string `json:"reason"`
	// Hosts are the VirtualService's hosts that cover the service, as
	// written.
	Hosts    []string `json:"hosts"`
	Gateways []string `json:"gateways,omitempty"`
	Routes   []Route  `json:"routes,omitempty"`
}

// Subset is a DestinationRule subset with the workloads it selects.
type Subset struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Workloads []string          `json:"workloads"`
	Policy    []string          `json:"policy,omitempty"`
}

// DestinationRule is the rule in effect for the client.
type DestinationRule struct {
	Object
	Host    string   `json:"host"`
	Reason  string   `json:"reason"`
	Subsets []Subset `json:"subsets,omitempty"`
	// Policy summarises the rule's top-level traffic policy.
	Policy []string `json:"policy,omitempty"`
}

// Candidate is a rule that could have applied but does not, and why.
type Candidate struct {
	Object
	Host   string `json:"host"`
	Reason string `json:"reason"`
}

// Cluster is the traffic policy in force on one outbound cluster (port and
// subset) of the service, after merging the rule's levels.
type Cluster struct {
	Name   string `json:"name"`
	Port   uint32 `json:"port"`
	Subset string `json:"subset,omitempty"`
	// TLS is the upstream TLS mode (DISABLE when plaintext), TLSReason
	// where it comes from.
	TLS       string   `json:"tls"`
	TLSReason string   `json:"tlsReason"`
	Policy    []string `json:"policy,omitempty"`
	// selects are the workloads of the subset.
	selects []string
}

// PortMTLS is the inbound mTLS mode of one workload port.
type PortMTLS struct {
	Workload string `json:"workload"`
	Port     uint32 `json:"port"`
	Mode     string `json:"mode"`
	// Level is port, workload, namespace, mesh or default; Policy the
	// PeerAuthentication that decided ("" for default).
	Level  string `json:"level"`
	Policy string `json:"policy,omitempty"`
}

// Authorization is an AuthorizationPolicy selecting one or more workloads.
type Authorization struct {
	Object
	Action string `json:"action"`
	// Scope says why it selects them: mesh-wide, namespace-wide or the
	// selector.
	Scope     string   `json:"scope"`
	Rules     []string `json:"rules"`
	Workloads []string `json:"workloads"`
}

// ServiceReport describes a service as one client sees it.
type ServiceReport struct {
	Host         string   `json:"host"`
	Namespace    string   `json:"namespace"`
	Source       Object   `json:"source"`
	Resolution   string   `json:"resolution"`
	MeshExternal bool     `json:"meshExternal"`
	Addresses    []string `json:"addresses,omitempty"`
	// ExportTo is the resolved exportTo ("*" for everyone).
	ExportTo []string `json:"exportTo"`
	// Port, when set, limits the report to that service port.
	Port      uint32     `json:"port,omitempty"`
	Ports     []Port     `json:"ports"`
	Workloads []Instance `json:"workloads"`

	From Viewpoint `json:"from"`
	// Visible says whether the client sees the service; VisibleReason why.
	Visible       bool   `json:"visible"`
	VisibleReason string `json:"visibleReason"`

	VirtualServices []VirtualService `json:"virtualServices"`
	DestinationRule *DestinationRule `json:"destinationRule,omitempty"`
	// OtherDestinationRules cover the host but are not in effect.
	OtherDestinationRules []Candidate `json:"otherDestinationRules,omitempty"`
	Clusters              []Cluster   `json:"clusters"`

	MTLS []PortMTLS `json:"mtls"`
	// Conflicts are mismatches between what clients send (Clusters) and
	// what workloads accept (MTLS).
	Conflicts     []string           `json:"conflicts,omitempty"`
	Authorization []Authorization    `json:"authorization"`
	Messages      []analysis.Message `json:"messages"`
}

// WorkloadService is a service a workload serves.
type WorkloadService struct {
	Host      string `json:"host"`
	Namespace string `json:"namespace"`
	// Ports are "name number→target/PROTOCOL".
	Ports []string `json:"ports"`
}

// Sidecar is the Sidecar resource in force for a workload.
type Sidecar struct {
	Object
	Reason   string   `json:"reason"`
	Egress   []string `json:"egress,omitempty"`
	Ingress  []string `json:"ingress,omitempty"`
	Outbound string   `json:"outboundTrafficPolicy,omitempty"`
}

// Outbound summarises what a workload's sidecar routes to.
type Outbound struct {
	VisibleServices int `json:"visibleServices"`
	// VirtualServices in scope, "namespace/name: hosts".
	VirtualServices []string `json:"virtualServices"`
	// AllowAny: unknown destinations pass through (else REGISTRY_ONLY).
	AllowAny bool `json:"allowAny"`
}

// WorkloadReport describes one workload.
type WorkloadReport struct {
	Object
	Address        string            `json:"address"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	// Identity is the SPIFFE ID the workload's certificate carries.
	Identity string            `json:"identity,omitempty"`
	Ports    map[string]uint32 `json:"ports,omitempty"`
	Network  string            `json:"network,omitempty"`
	Locality string            `json:"locality,omitempty"`

	Services []WorkloadService `json:"services"`
	Sidecar  *Sidecar          `json:"sidecar,omitempty"`
	// SidecarReason says why no Sidecar resource applies.
	SidecarReason string   `json:"sidecarReason,omitempty"`
	Outbound      Outbound `json:"outbound"`

	// MTLSDefault is the mode of ports without a port-level setting.
	MTLSDefault   PortMTLS           `json:"mtlsDefault"`
	MTLS          []PortMTLS         `json:"mtls"`
	Authorization []Authorization    `json:"authorization"`
	Messages      []analysis.Message `json:"messages"`
}
