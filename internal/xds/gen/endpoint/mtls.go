package endpoint

import (
	"github.com/trellismesh/trellis/internal/model"
)

// workloadMTLSDisabled reports whether PeerAuthentication turns mutual TLS
// off for the endpoint's workload on its target port (model.Snapshot.
// PeerAuthentication: Istio's precedence, port-level settings keyed by the
// workload port). Istio's endpoint builder then drops the endpoint's tlsMode
// metadata so that clients send plaintext to it even with auto mTLS.
func workloadMTLSDisabled(s *model.Snapshot, ep *model.Endpoint, svcNamespace string, port uint32) bool {
	labels := ep.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	ns := ep.Namespace
	if ns == "" {
		ns = svcNamespace
	}
	return s.PeerAuthentication(ns, labels).ModeForPort(port) == model.MTLSDisable
}
