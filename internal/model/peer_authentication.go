package model

import (
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
)

// MTLSMode is the inbound mutual TLS mode PeerAuthentication puts on a
// workload port.
type MTLSMode uint8

// Modes, as Istio's model.MutualTLSMode. MTLSUnknown is never the result of
// ComposePeerAuthentication; it marks "no inference possible" for callers
// that guess a service's mode (auto mTLS).
const (
	MTLSUnknown MTLSMode = iota
	// MTLSDisable: plaintext only.
	MTLSDisable
	// MTLSPermissive: mutual TLS and plaintext on the same port.
	MTLSPermissive
	// MTLSStrict: mutual TLS only.
	MTLSStrict
)

func (m MTLSMode) String() string {
	switch m {
	case MTLSDisable:
		return "DISABLE"
	case MTLSPermissive:
		return "PERMISSIVE"
	case MTLSStrict:
		return "STRICT"
	}
	return "UNKNOWN"
}

// mtlsModeOf converts an API mode; ok is false for UNSET (inherit).
func mtlsModeOf(m *security.PeerAuthentication_MutualTLS) (MTLSMode, bool) {
	switch m.GetMode() {
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable, true
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive, true
	case security.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict, true
	}
	return MTLSUnknown, false
}

// PeerAuthnPolicy is the effective PeerAuthentication of one workload.
type PeerAuthnPolicy struct {
	// Mode applies to every port without a port-level setting.
	Mode MTLSMode
	// PerPort holds portLevelMtls of the workload policy, keyed by the
	// workload's (target) port, with UNSET already resolved to Mode.
	// Shared; do not mutate.
	PerPort map[uint32]MTLSMode
	// Mesh, Namespace and Workload name ("namespace/name") the policies
	// chosen at each level, "" where there is none; for debugging and
	// analysis.
	Mesh, Namespace, Workload string
}

// ModeForPort is the mode of a workload port: its port-level setting, else
// the workload's mode. Port 0 (the passthrough chains) has no port-level
// setting.
func (p PeerAuthnPolicy) ModeForPort(port uint32) MTLSMode {
	if m, ok := p.PerPort[port]; ok && port != 0 {
		return m
	}
	return p.Mode
}

// ComposePeerAuthentication computes the effective policy of a workload in
// namespace ns with the given labels, from policies in Istio's order
// (oldest first; ties by name). Istio's rules
// (pilot/pkg/security/authn ComposePeerAuthentication):
//
//   - mesh level: the oldest selector-less policy in the root namespace;
//   - namespace level: the oldest selector-less policy in ns (when ns is the
//     root namespace, that is the mesh level);
//   - workload level: the oldest policy in ns, not the root namespace, whose
//     non-empty selector matches labels (root-namespace policies with a
//     selector apply to nobody);
//   - the narrowest level that sets a mode wins; UNSET (or no mtls block)
//     inherits from the level above; the default is PERMISSIVE;
//   - portLevelMtls of the workload policy overrides per workload port, an
//     UNSET port mode inheriting the workload's resolved mode.
//
// Policies of other namespaces are ignored, so callers may pass every
// PeerAuthentication. Pure: the result shares no state with the inputs
// except the read-only PerPort map built here.
func ComposePeerAuthentication(root, ns string, labels map[string]string, policies []config.Config) PeerAuthnPolicy {
	var mesh, nsWide, workload *config.Config
	for i := range policies {
		c := &policies[i]
		if c.Namespace != root && c.Namespace != ns {
			continue
		}
		pa, ok := c.Spec.(*security.PeerAuthentication)
		if !ok {
			continue
		}
		sel := pa.GetSelector().GetMatchLabels()
		switch {
		case len(sel) == 0 && c.Namespace == root:
			if mesh == nil {
				mesh = c
			}
		case len(sel) == 0:
			if nsWide == nil {
				nsWide = c
			}
		case c.Namespace != root && LabelsMatch(sel, labels):
			if workload == nil {
				workload = c
			}
		}
	}
	out := PeerAuthnPolicy{Mode: MTLSPermissive}
	for _, c := range []*config.Config{mesh, nsWide, workload} {
		if c == nil {
			continue
		}
		if m, ok := mtlsModeOf(c.Spec.(*security.PeerAuthentication).GetMtls()); ok {
			out.Mode = m
		}
	}
	out.Mesh, out.Namespace, out.Workload = configName(mesh), configName(nsWide), configName(workload)
	if workload == nil {
		return out
	}
	if pl := workload.Spec.(*security.PeerAuthentication).GetPortLevelMtls(); len(pl) > 0 {
		out.PerPort = make(map[uint32]MTLSMode, len(pl))
		for port, m := range pl {
			if mode, ok := mtlsModeOf(m); ok {
				out.PerPort[port] = mode
			} else {
				out.PerPort[port] = out.Mode
			}
		}
	}
	return out
}

// NamespaceMTLSMode is the mode namespace-wide and mesh-wide policies give
// namespace ns (workload and port policies ignored), PERMISSIVE when none
// sets one. It is Istio's best-effort guess of a service's mode for auto
// mTLS (PushContext.BestEffortInferServiceMTLSMode).
func NamespaceMTLSMode(root, ns string, policies []config.Config) MTLSMode {
	return ComposePeerAuthentication(root, ns, nil, withoutSelectors(policies)).Mode
}

func withoutSelectors(policies []config.Config) []config.Config {
	out := make([]config.Config, 0, len(policies))
	for _, c := range policies {
		if pa, ok := c.Spec.(*security.PeerAuthentication); ok && len(pa.GetSelector().GetMatchLabels()) == 0 {
			out = append(out, c)
		}
	}
	return out
}

func configName(c *config.Config) string {
	if c == nil {
		return ""
	}
	return c.Namespace + "/" + c.Name
}

// peerAuthnIndex holds PeerAuthentication configs by namespace, each list
// in Istio's order.
type peerAuthnIndex map[string][]config.Config

func newPeerAuthnIndex(sorted []config.Config) peerAuthnIndex {
	idx := peerAuthnIndex{}
	for _, c := range sorted {
		idx[c.Namespace] = append(idx[c.Namespace], c)
	}
	return idx
}

// candidates returns the policies that can apply to a workload in ns: the
// root namespace's and ns's.
func (idx peerAuthnIndex) candidates(root, ns string) []config.Config {
	if ns == root {
		return idx[root]
	}
	return append(append([]config.Config(nil), idx[root]...), idx[ns]...)
}

// PeerAuthentication returns the effective PeerAuthentication of a workload
// in namespace ns with the given labels (see ComposePeerAuthentication).
func (s *Snapshot) PeerAuthentication(ns string, labels map[string]string) PeerAuthnPolicy {
	root := s.Mesh.GetRootNamespace()
	return ComposePeerAuthentication(root, ns, labels, s.peerAuthn.candidates(root, ns))
}

// NamespaceMTLSMode returns the namespace- or mesh-wide mode of ns (see the
// package function).
func (s *Snapshot) NamespaceMTLSMode(ns string) MTLSMode {
	root := s.Mesh.GetRootNamespace()
	return NamespaceMTLSMode(root, ns, s.peerAuthn.candidates(root, ns))
}
