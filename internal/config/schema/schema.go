package schema

import (
	"sort"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
)

// API groups.
const (
	NetworkingGroup = "networking.istio.io"
	SecurityGroup   = "security.istio.io"
)

// Kinds, keyed by GroupKind.
var (
	VirtualService        = config.GroupKind{Group: NetworkingGroup, Kind: "VirtualService"}
	DestinationRule       = config.GroupKind{Group: NetworkingGroup, Kind: "DestinationRule"}
	Gateway               = config.GroupKind{Group: NetworkingGroup, Kind: "Gateway"}
	ServiceEntry          = config.GroupKind{Group: NetworkingGroup, Kind: "ServiceEntry"}
	WorkloadEntry         = config.GroupKind{Group: NetworkingGroup, Kind: "WorkloadEntry"}
	WorkloadGroup         = config.GroupKind{Group: NetworkingGroup, Kind: "WorkloadGroup"}
	Sidecar               = config.GroupKind{Group: NetworkingGroup, Kind: "Sidecar"}
	PeerAuthentication    = config.GroupKind{Group: SecurityGroup, Kind: "PeerAuthentication"}
	AuthorizationPolicy   = config.GroupKind{Group: SecurityGroup, Kind: "AuthorizationPolicy"}
	RequestAuthentication = config.GroupKind{Group: SecurityGroup, Kind: "RequestAuthentication"}
)

// Schema describes one kind.
type Schema struct {
	config.GroupKind
	// Versions are the API versions Istio serves the kind at, preferred first.
	Versions []string
	// Plural is the lower-case plural resource name (virtualservices).
	Plural string
	// New returns an empty spec message of the kind.
	New func() proto.Message
}

// Set is an immutable collection of schemas.
type Set struct {
	byKind map[config.GroupKind]Schema
	list   []Schema
}

// Istio returns the Istio kinds Trellis reads from files and (later) CRDs.
func Istio() Set {
	net := []string{"v1", "v1beta1", "v1alpha3"}
	sec := []string{"v1", "v1beta1"}
	return NewSet(
		Schema{VirtualService, net, "virtualservices", func() proto.Message { return &networking.VirtualService{} }},
		Schema{DestinationRule, net, "destinationrules", func() proto.Message { return &networking.DestinationRule{} }},
		Schema{Gateway, net, "gateways", func() proto.Message { return &networking.Gateway{} }},
		Schema{ServiceEntry, net, "serviceentries", func() proto.Message { return &networking.ServiceEntry{} }},
		Schema{WorkloadEntry, net, "workloadentries", func() proto.Message { return &networking.WorkloadEntry{} }},
		Schema{WorkloadGroup, net, "workloadgroups", func() proto.Message { return &networking.WorkloadGroup{} }},
		Schema{Sidecar, net, "sidecars", func() proto.Message { return &networking.Sidecar{} }},
		Schema{PeerAuthentication, sec, "peerauthentications", func() proto.Message { return &security.PeerAuthentication{} }},
		Schema{AuthorizationPolicy, sec, "authorizationpolicies", func() proto.Message { return &security.AuthorizationPolicy{} }},
		Schema{RequestAuthentication, sec, "requestauthentications", func() proto.Message { return &security.RequestAuthentication{} }},
	)
}

// NewSet builds a set from schemas.
func NewSet(schemas ...Schema) Set {
	s := Set{byKind: make(map[config.GroupKind]Schema, len(schemas))}
	for _, sc := range schemas {
		s.byKind[sc.GroupKind] = sc
	}
	for _, sc := range s.byKind {
		s.list = append(s.list, sc)
	}
	sort.Slice(s.list, func(i, j int) bool {
		return s.list[i].String() < s.list[j].String()
	})
	return s
}

// Get returns the schema of a kind.
func (s Set) Get(gk config.GroupKind) (Schema, bool) {
	sc, ok := s.byKind[gk]
	return sc, ok
}

// Find resolves apiVersion ("group/version") and kind to a schema. It
// reports false when the group, kind or version is not served.
func (s Set) Find(group, version, kind string) (Schema, bool) {
	sc, ok := s.byKind[config.GroupKind{Group: group, Kind: kind}]
	if !ok {
		return Schema{}, false
	}
	for _, v := range sc.Versions {
		if v == version {
			return sc, true
		}
	}
	return Schema{}, false
}

// All returns the schemas sorted by kind.
func (s Set) All() []Schema {
	out := make([]Schema, len(s.list))
	copy(out, s.list)
	return out
}
