package model

import (
	"sort"
	"sync"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// SnapshotInput is everything a Snapshot is built from.
type SnapshotInput struct {
	Version string
	Mesh    *meshconfig.MeshConfig // nil: DefaultMesh()
	// DomainSuffix completes short host names ("" means cluster.local).
	DomainSuffix string
	Configs      []config.Config
	Services     []*Service
	Endpoints    map[ServiceKey][]*Endpoint
	// JWKS holds the key sets the control plane fetched for
	// RequestAuthentication jwksUri values (uri → JWKS JSON); a uri with
	// no entry has no keys (request_authentication.go).
	JWKS map[string]string
}

// Snapshot is the immutable state every generator reads: configuration,
// services and endpoints at one version. Build it with NewSnapshot; never
// mutate anything reachable from it.
type Snapshot struct {
	Version      string
	Mesh         *meshconfig.MeshConfig
	DomainSuffix string

	byKind    map[config.GroupKind][]config.Config
	byKey     map[config.Key]config.Config
	services  []*Service
	byHost    map[string][]*Service
	endpoints map[ServiceKey][]*Endpoint
	// byAddress indexes endpoints of every service by address, for inbound.
	byAddress map[string][]ServiceInstance
	// scopes memoizes the shared part of proxies' scopes, keyed by every
	// input (scopeKey); filled lazily, never invalidated (the snapshot is
	// immutable).
	scopes sync.Map
	// rulesByNS indexes DestinationRules by namespace, in Istio's order.
	rulesByNS map[string][]destinationRule
	// peerAuthn indexes PeerAuthentications by namespace, in Istio's order.
	peerAuthn peerAuthnIndex
	// authz indexes AuthorizationPolicies by namespace (authorization.go).
	authz authzIndex
	// jwks holds fetched key sets by jwksUri (request_authentication.go).
	jwks map[string]string
}

// destinationRule is an indexed DestinationRule with its resolved host.
type destinationRule struct {
	cfg      *config.Config
	spec     *networking.DestinationRule
	host     string
	selector map[string]string
	vis      Visibility // resolved exportTo
}

// ServiceInstance is an endpoint of one service, as seen from its workload.
type ServiceInstance struct {
	Service  *Service
	Endpoint *Endpoint
}

// NewSnapshot indexes its input. Configs are ordered as Istio orders them:
// by creation time, then namespace/name.
func NewSnapshot(in SnapshotInput) *Snapshot {
	s := &Snapshot{
		Version:      in.Version,
		Mesh:         in.Mesh,
		DomainSuffix: in.DomainSuffix,
		byKind:       map[config.GroupKind][]config.Config{},
		byKey:        map[config.Key]config.Config{},
		byHost:       map[string][]*Service{},
		endpoints:    map[ServiceKey][]*Endpoint{},
		byAddress:    map[string][]ServiceInstance{},
		jwks:         in.JWKS,
	}
	if s.Mesh == nil {
		s.Mesh = DefaultMesh()
	}
	if s.DomainSuffix == "" {
		s.DomainSuffix = DefaultDomainSuffix
	}
	for _, c := range in.Configs {
		s.byKind[c.Kind] = append(s.byKind[c.Kind], c)
		s.byKey[c.Key()] = c
	}
	for _, list := range s.byKind {
		SortConfigs(list)
	}
	s.peerAuthn = newPeerAuthnIndex(s.byKind[schema.PeerAuthentication])
	s.authz = newAuthzIndex(s.byKind[schema.AuthorizationPolicy])
	s.rulesByNS = map[string][]destinationRule{}
	drs := s.byKind[schema.DestinationRule]
	for i := range drs {
		c := &drs[i]
		dr := c.Spec.(*networking.DestinationRule)
		s.rulesByNS[c.Namespace] = append(s.rulesByNS[c.Namespace], destinationRule{
			cfg: c, spec: dr, host: s.ResolveHost(dr.GetHost(), c.Namespace),
			selector: dr.GetWorkloadSelector().GetMatchLabels(),
			vis:      NewVisibility(dr.GetExportTo(), c.Namespace, s.Mesh.GetDefaultDestinationRuleExportTo()),
		})
	}
	s.services = append([]*Service(nil), in.Services...)
	SortServices(s.services)
	for _, svc := range s.services {
		s.byHost[svc.Hostname] = append(s.byHost[svc.Hostname], svc)
		eps := append([]*Endpoint(nil), in.Endpoints[svc.Key()]...)
		SortEndpoints(eps)
		s.endpoints[svc.Key()] = eps
		for _, ep := range eps {
			s.byAddress[ep.Address] = append(s.byAddress[ep.Address], ServiceInstance{Service: svc, Endpoint: ep})
		}
	}
	return s
}

// SortConfigs orders configs by creation time, then namespace, then name.
func SortConfigs(list []config.Config) {
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if !a.CreationTimestamp.Equal(b.CreationTimestamp) {
			return a.CreationTimestamp.Before(b.CreationTimestamp)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

// Configs returns the configs of a kind in Istio's order. Shared; do not mutate.
func (s *Snapshot) Configs(kind config.GroupKind) []config.Config { return s.byKind[kind] }

// Config returns one config by key.
func (s *Snapshot) Config(k config.Key) (config.Config, bool) {
	c, ok := s.byKey[k]
	return c, ok
}

// Services returns every service, sorted. Shared; do not mutate.
func (s *Snapshot) Services() []*Service { return s.services }

// ServicesByHost returns the services declared for a host name (one per
// declaring namespace).
func (s *Snapshot) ServicesByHost(host string) []*Service { return s.byHost[host] }

// Endpoints returns the endpoints of a service, sorted. Shared; do not mutate.
func (s *Snapshot) Endpoints(k ServiceKey) []*Endpoint { return s.endpoints[k] }

// InstancesAt returns the service instances whose endpoint address is addr.
func (s *Snapshot) InstancesAt(addr string) []ServiceInstance { return s.byAddress[addr] }

// ProxyInstances returns the service instances a proxy serves (endpoints
// whose address is one of the proxy's IPs), sorted by service then port.
func (s *Snapshot) ProxyInstances(p *Proxy) []ServiceInstance {
	var out []ServiceInstance
	for _, ip := range p.IPAddresses {
		out = append(out, s.byAddress[ip]...)
	}
	return out
}

// ServiceExportTo returns the visibility of a service.
func (s *Snapshot) ServiceVisibility(svc *Service) Visibility {
	return NewVisibility(svc.ExportTo, svc.Namespace, s.Mesh.GetDefaultServiceExportTo())
}

// ResolveHost completes a short name written in namespace ns.
func (s *Snapshot) ResolveHost(host, ns string) string {
	return ResolveShortName(host, ns, s.DomainSuffix)
}

// SidecarFor returns the Sidecar resource that applies to a proxy: one in
// its namespace whose selector matches its labels (oldest first), else the
// namespace's selector-less one, else the root namespace's selector-less one.
// Sidecar resources do not apply to gateways.
func (s *Snapshot) SidecarFor(p *Proxy) (config.Config, bool) {
	if p.Type == Router {
		return config.Config{}, false
	}
	var nsDefault, rootDefault *config.Config
	root := s.Mesh.GetRootNamespace()
	list := s.byKind[schema.Sidecar]
	for i := range list {
		c := &list[i]
		sc := c.Spec.(*networking.Sidecar)
		sel := sc.GetWorkloadSelector().GetLabels()
		switch {
		case c.Namespace == p.Namespace && len(sel) > 0:
			if LabelsMatch(sel, p.Labels) {
				return *c, true
			}
		case c.Namespace == p.Namespace && nsDefault == nil:
			nsDefault = c
		case c.Namespace == root && len(sel) == 0 && rootDefault == nil:
			rootDefault = c
		}
	}
	if nsDefault != nil {
		return *nsDefault, true
	}
	if rootDefault != nil {
		return *rootDefault, true
	}
	return config.Config{}, false
}
