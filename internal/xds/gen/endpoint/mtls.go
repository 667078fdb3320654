package endpoint

import (
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// PeerMTLSDisabled reports whether PeerAuthentication turns mutual TLS off
// for a workload in namespace ns with the given labels, receiving on port
// (0: no port-level settings). Precedence as in Istio: a workload-selected
// policy in ns (port-level mode first), then the namespace-wide policy,
// then the root namespace's mesh-wide policy; UNSET inherits. With nil
// labels only namespace and mesh policies count (Istio's service-level
// inference). The default is PERMISSIVE, which is not disabled.
func PeerMTLSDisabled(s *model.Snapshot, ns string, labels map[string]string, port uint32) bool {
	return peerMode(s, ns, labels, port) == security.PeerAuthentication_MutualTLS_DISABLE
}

func peerMode(s *model.Snapshot, ns string, labels map[string]string, port uint32) security.PeerAuthentication_MutualTLS_Mode {
	const unset = security.PeerAuthentication_MutualTLS_UNSET
	var nsWide, meshWide *security.PeerAuthentication
	workloadSeen := false
	root := s.Mesh.GetRootNamespace()
	for _, c := range s.Configs(schema.PeerAuthentication) {
		pa, ok := c.Spec.(*security.PeerAuthentication)
		if !ok {
			continue
		}
		sel := pa.GetSelector().GetMatchLabels()
		switch {
		case c.Namespace == ns && len(sel) > 0:
			if workloadSeen || labels == nil || !model.LabelsMatch(sel, labels) {
				continue
			}
			workloadSeen = true // the oldest matching policy decides
			if m := pa.GetPortLevelMtls()[port].GetMode(); port != 0 && m != unset {
				return m
			}
			if m := pa.GetMtls().GetMode(); m != unset {
				return m
			}
		case c.Namespace == ns && len(sel) == 0 && nsWide == nil:
			nsWide = pa
		case c.Namespace == root && len(sel) == 0 && meshWide == nil:
			meshWide = pa
		}
	}
	if m := nsWide.GetMtls().GetMode(); m != unset {
		return m
	}
	if m := meshWide.GetMtls().GetMode(); m != unset {
		return m
	}
	return security.PeerAuthentication_MutualTLS_PERMISSIVE
}

func workloadMTLSDisabled(s *model.Snapshot, ep *model.Endpoint, svcNamespace string, port uint32) bool {
	labels := ep.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	ns := ep.Namespace
	if ns == "" {
		ns = svcNamespace
	}
	return PeerMTLSDisabled(s, ns, labels, port)
}
