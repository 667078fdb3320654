package describe

import (
	"slices"
	"strings"

	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// peerAuthnKey is the key of the PeerAuthentication "namespace/name".
func peerAuthnKey(ref string) config.Key {
	ns, name, _ := strings.Cut(ref, "/")
	return config.Key{Kind: schema.PeerAuthentication, Namespace: ns, Name: name}
}

// peerAuthnSetsMode reports whether a PeerAuthentication sets a
// workload-wide mode (UNSET or no mtls block inherits).
func peerAuthnSetsMode(c config.Config) bool {
	pa, ok := c.Spec.(*security.PeerAuthentication)
	return ok && pa.GetMtls() != nil && pa.GetMtls().GetMode() != security.PeerAuthentication_MutualTLS_UNSET
}

// portMTLS says which mode PeerAuthentication gives a workload port and
// which level of pa decided it: the workload policy's port-level setting,
// else the narrowest level that sets a mode (workload, namespace, mesh),
// else Istio's default, PERMISSIVE.
func portMTLS(snap *model.Snapshot, pa model.PeerAuthnPolicy, port uint32) PortMTLS {
	m := PortMTLS{Port: port, Mode: pa.ModeForPort(port).String()}
	if pa.Workload != "" && port != 0 {
		if c, ok := snap.Config(peerAuthnKey(pa.Workload)); ok {
			if pl, ok := c.Spec.(*security.PeerAuthentication).GetPortLevelMtls()[port]; ok && pl.GetMode() != security.PeerAuthentication_MutualTLS_UNSET {
				m.Level, m.Policy = "port", pa.Workload
				return m
			}
		}
	}
	for _, l := range []struct{ level, ref string }{{"workload", pa.Workload}, {"namespace", pa.Namespace}, {"mesh", pa.Mesh}} {
		if l.ref == "" {
			continue
		}
		if c, ok := snap.Config(peerAuthnKey(l.ref)); ok && peerAuthnSetsMode(c) {
			m.Level, m.Policy = l.level, l.ref
			return m
		}
	}
	m.Level = "default"
	return m
}

// authzCollector gathers the AuthorizationPolicies selecting a set of
// workloads, one entry per policy.
type authzCollector struct {
	snap  *model.Snapshot
	byKey map[config.Key]*Authorization
	order []config.Key
}

func newAuthzCollector(snap *model.Snapshot) *authzCollector {
	return &authzCollector{snap: snap, byKey: map[config.Key]*Authorization{}}
}

// add records the policies that select workload (in ns, with labels).
func (a *authzCollector) add(ns, workload string, labels map[string]string) {
	ps := a.snap.AuthorizationPolicies(ns, labels)
	root := a.snap.Mesh.GetRootNamespace()
	for _, list := range [][]config.Config{ps.Custom, ps.Deny, ps.Allow, ps.Audit} {
		for _, c := range list {
			k := c.Key()
			e, ok := a.byKey[k]
			if !ok {
				ap := c.Spec.(*security.AuthorizationPolicy)
				e = &Authorization{Object: objectOf(a.snap, k), Action: ap.GetAction().String(), Rules: authzRules(ap)}
				sel := ap.GetSelector().GetMatchLabels()
				switch {
				case c.Namespace == root && len(sel) == 0:
					e.Scope = "mesh-wide (root namespace " + root + ", no selector)"
				case c.Namespace == root:
					e.Scope = "selector " + labelString(sel) + " in every namespace (root namespace " + root + ")"
				case len(sel) == 0:
					e.Scope = "namespace-wide (no selector)"
				default:
					e.Scope = "selector " + labelString(sel)
				}
				a.byKey[k] = e
				a.order = append(a.order, k)
			}
			if !slices.Contains(e.Workloads, workload) {
				e.Workloads = append(e.Workloads, workload)
			}
		}
	}
}

// list returns the policies by action (CUSTOM, DENY, ALLOW, AUDIT: the
// order the proxy evaluates them), then in Istio's order, and marks them
// involved.
func (a *authzCollector) list(involved map[config.Key]bool) []Authorization {
	rank := map[string]int{"CUSTOM": 0, "DENY": 1, "ALLOW": 2, "AUDIT": 3}
	keys := slices.Clone(a.order)
	slices.SortStableFunc(keys, func(x, y config.Key) int { return rank[a.byKey[x].Action] - rank[a.byKey[y].Action] })
	out := make([]Authorization, 0, len(keys))
	for _, k := range keys {
		involved[k] = true
		out = append(out, *a.byKey[k])
	}
	return out
}

// messagesFor keeps the messages about the involved objects.
func messagesFor(ms []analysis.Message, involved map[config.Key]bool) []analysis.Message {
	out := []analysis.Message{}
	for _, m := range ms {
		for k := range involved {
			if k.Kind.Kind == m.Origin.Kind && k.Namespace == m.Origin.Namespace && k.Name == m.Origin.Name {
				out = append(out, m)
				break
			}
		}
	}
	return out
}
