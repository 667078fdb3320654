package xdsclient

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// delta is incremental ADS:
//
//   - the first request of a type on a stream subscribes (CDS/LDS: legacy
//     wildcard, no names; EDS/RDS: every current name) and, after a
//     reconnect, lists initial_resource_versions of every accepted
//     resource, so the server sends only what changed or was removed;
//   - later subscription changes are resource_names_subscribe /
//     _unsubscribe increments without a nonce (they are not ACKs);
//   - an ACK is a request with the response's nonce; a NACK adds
//     error_detail. Versions are per resource, so nothing else is echoed;
//   - a response adds or replaces the resources it carries and deletes the
//     names in removed_resources; for EDS/RDS only subscribed names are
//     kept.
type delta struct{}

func (delta) kind() Protocol { return Delta }

func (delta) method() string { return methodDelta }

func (delta) decode(b []byte) (*response, error) {
	var m discoveryv3.DeltaDiscoveryResponse
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding DeltaDiscoveryResponse: %w", err)
	}
	r := &response{typeURL: m.GetTypeUrl(), version: m.GetSystemVersionInfo(), nonce: m.GetNonce(), removed: m.GetRemovedResources()}
	r.resources = make([]rawResource, len(m.GetResources()))
	for i, res := range m.GetResources() {
		r.resources[i] = rawResource{name: res.GetName(), version: res.GetVersion(), body: res.GetResource()}
	}
	return r, nil
}

func (delta) initial(t *typeState) proto.Message {
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t.rt.url}
	if !t.rt.wildcard {
		req.ResourceNamesSubscribe = t.names
	}
	if len(t.accepted) > 0 {
		req.InitialResourceVersions = make(map[string]string, len(t.accepted))
		for name, r := range t.accepted {
			req.InitialResourceVersions[name] = r.version
		}
	}
	return req
}

func (delta) reply(t *typeState, nonce string, detail *statuspb.Status) proto.Message {
	return &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t.rt.url, ResponseNonce: nonce, ErrorDetail: detail}
}

func (delta) resubscribe(t *typeState, added, removed []string) proto.Message {
	return &discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                  t.rt.url,
		ResourceNamesSubscribe:   added,
		ResourceNamesUnsubscribe: removed,
	}
}

func (delta) merge(t *typeState, r *response, decoded []resource) map[string]resource {
	next := make(map[string]resource, len(t.accepted)+len(decoded))
	for name, res := range t.accepted {
		next[name] = res
	}
	for _, name := range r.removed {
		delete(next, name)
	}
	for _, res := range decoded {
		if t.rt.wildcard || t.subscribed(res.name) {
			next[res.name] = res
		}
	}
	return next
}

func (delta) setNode(req proto.Message, node *corev3.Node) {
	req.(*discoveryv3.DeltaDiscoveryRequest).Node = node
}
