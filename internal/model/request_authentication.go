package model

import (
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// SelectRequestAuthentications picks, from RequestAuthentications in
// Istio's order, those that apply to a sidecar workload in namespace ns
// with the given labels. The rules are AuthorizationPolicy's (Istio's
// WorkloadPolicyMatcher for non-gateway workloads): policies of the root
// namespace and of ns are candidates, a policy with targetRef/targetRefs
// never applies to a sidecar, and a selector must be empty or a subset of
// the labels. Policies of other namespaces are ignored.
func SelectRequestAuthentications(root, ns string, labels map[string]string, policies []config.Config) []config.Config {
	var out []config.Config
	for _, c := range policies {
		if c.Namespace != root && c.Namespace != ns {
			continue
		}
		ra, ok := c.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		if ra.GetTargetRef() != nil || len(ra.GetTargetRefs()) > 0 {
			continue
		}
		if sel := ra.GetSelector().GetMatchLabels(); len(sel) > 0 && !LabelsMatch(sel, labels) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// RequestAuthentications returns the RequestAuthentications that apply to
// a sidecar workload in namespace ns with the given labels, in Istio's
// order (see SelectRequestAuthentications). Shared configs; do not mutate.
func (s *Snapshot) RequestAuthentications(ns string, labels map[string]string) []config.Config {
	return SelectRequestAuthentications(s.Mesh.GetRootNamespace(), ns, labels, s.byKind[schema.RequestAuthentication])
}

// JWKSURIs returns the distinct jwksUri values of the RequestAuthentications
// in configs whose rules have no inline jwks, in first-seen order: what the
// control plane's key resolver must fetch for a snapshot of these configs.
func JWKSURIs(configs []config.Config) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range configs {
		ra, ok := c.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		for _, r := range ra.GetJwtRules() {
			if u := r.GetJwksUri(); u != "" && r.GetJwks() == "" && !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out
}

// JWKS returns the key set the control plane fetched for a jwksUri at this
// snapshot's version. ok is false when it has none (never fetched, or the
// last fetches failed): tokens of that issuer must then fail verification.
func (s *Snapshot) JWKS(uri string) (doc string, ok bool) {
	doc, ok = s.jwks[uri]
	return doc, ok
}
