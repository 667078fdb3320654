package model

import (
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
)

// AuthzPolicies are the AuthorizationPolicies that apply to one workload,
// by action, each list in Istio's order (creation time, then
// namespace/name). Shared with the snapshot; do not mutate.
type AuthzPolicies struct {
	Custom, Deny, Allow, Audit []config.Config
}

// Empty reports whether no policy applies.
func (p AuthzPolicies) Empty() bool {
	return len(p.Custom)+len(p.Deny)+len(p.Allow)+len(p.Audit) == 0
}

// authzIndex holds AuthorizationPolicy configs by namespace, each list in
// Istio's order.
type authzIndex map[string][]config.Config

func newAuthzIndex(sorted []config.Config) authzIndex {
	idx := authzIndex{}
	for _, c := range sorted {
		idx[c.Namespace] = append(idx[c.Namespace], c)
	}
	return idx
}

// SelectAuthorizationPolicies picks, from policies in Istio's order, those
// that apply to a sidecar workload in namespace ns with the given labels,
// with Istio's rules (model.WorkloadPolicyMatcher for non-gateway
// workloads):
//
//   - policies of the root namespace and of ns are candidates; a
//     root-namespace policy applies mesh-wide;
//   - a policy with targetRef/targetRefs never applies to a sidecar
//     (targetRefs attach policies to gateways and waypoints only);
//   - otherwise its selector must be empty or a subset of the labels
//     (root-namespace selectors match workloads of every namespace).
//
// Policies of other namespaces are ignored, so callers may pass every
// AuthorizationPolicy.
func SelectAuthorizationPolicies(root, ns string, labels map[string]string, policies []config.Config) AuthzPolicies {
	var out AuthzPolicies
	for _, c := range policies {
		if c.Namespace != root && c.Namespace != ns {
			continue
		}
		ap, ok := c.Spec.(*security.AuthorizationPolicy)
		if !ok {
			continue
		}
		if ap.GetTargetRef() != nil || len(ap.GetTargetRefs()) > 0 {
			continue
		}
		if sel := ap.GetSelector().GetMatchLabels(); len(sel) > 0 && !LabelsMatch(sel, labels) {
			continue
		}
		switch ap.GetAction() {
		case security.AuthorizationPolicy_ALLOW:
			out.Allow = append(out.Allow, c)
		case security.AuthorizationPolicy_DENY:
			out.Deny = append(out.Deny, c)
		case security.AuthorizationPolicy_AUDIT:
			out.Audit = append(out.Audit, c)
		case security.AuthorizationPolicy_CUSTOM:
			out.Custom = append(out.Custom, c)
		}
	}
	return out
}

// AuthorizationPolicies returns the policies that apply to a sidecar
// workload in namespace ns with the given labels (see
// SelectAuthorizationPolicies).
func (s *Snapshot) AuthorizationPolicies(ns string, labels map[string]string) AuthzPolicies {
	root := s.Mesh.GetRootNamespace()
	var candidates []config.Config
	if ns == root {
		candidates = s.authz[root]
	} else {
		// Root namespace first, then the workload's, as Istio lists them.
		candidates = append(append([]config.Config(nil), s.authz[root]...), s.authz[ns]...)
	}
	return SelectAuthorizationPolicies(root, ns, labels, candidates)
}
