package xdsclient

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// sotw is state-of-the-world ADS:
//
//   - every request carries version_info = the last version the client
//     accepted for the type (unchanged by a NACK), the nonce of the last
//     response received, and for EDS/RDS the complete list of names;
//   - the first request of a type on a stream has no nonce; after a
//     reconnect it carries the accepted version, so a server may skip an
//     unchanged resend;
//   - a NACK is a request with the rejected response's nonce, the old
//     version and error_detail. A subscription change sent before the next
//     response repeats that error_detail: with the same nonce and no
//     error_detail the server would take it as an ACK of the rejected
//     response;
//   - CDS/LDS responses replace the whole set; EDS/RDS responses update the
//     names they carry (the protocol lets a server send a subset) and
//     resources leave only by unsubscription.
type sotw struct{}

func (sotw) kind() Protocol { return SotW }

func (sotw) method() string { return methodSotw }

func (sotw) decode(b []byte) (*response, error) {
	var m discoveryv3.DiscoveryResponse
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding DiscoveryResponse: %w", err)
	}
	r := &response{typeURL: m.GetTypeUrl(), version: m.GetVersionInfo(), nonce: m.GetNonce()}
	r.resources = make([]rawResource, len(m.GetResources()))
	for i, a := range m.GetResources() {
		r.resources[i] = rawResource{body: a}
	}
	return r, nil
}

func (sotw) initial(t *typeState) proto.Message {
	return &discoveryv3.DiscoveryRequest{
		TypeUrl:       t.rt.url,
		VersionInfo:   t.version,
		ResourceNames: t.names,
	}
}

func (sotw) reply(t *typeState, nonce string, detail *statuspb.Status) proto.Message {
	return &discoveryv3.DiscoveryRequest{
		TypeUrl:       t.rt.url,
		VersionInfo:   t.version,
		ResourceNames: t.names,
		ResponseNonce: nonce,
		ErrorDetail:   detail,
	}
}

func (sotw) resubscribe(t *typeState, _, _ []string) proto.Message {
	return &discoveryv3.DiscoveryRequest{
		TypeUrl:       t.rt.url,
		VersionInfo:   t.version,
		ResourceNames: t.names,
		ResponseNonce: t.nonce,
		ErrorDetail:   t.nacked,
	}
}

func (sotw) merge(t *typeState, _ *response, decoded []resource) map[string]resource {
	next := make(map[string]resource, len(decoded))
	if !t.rt.wildcard {
		for name, r := range t.accepted {
			next[name] = r // t.accepted holds subscribed names only
		}
	}
	for _, r := range decoded {
		if t.rt.wildcard || t.subscribed(r.name) {
			next[r.name] = r
		}
	}
	return next
}

func (sotw) setNode(req proto.Message, node *corev3.Node) {
	req.(*discoveryv3.DiscoveryRequest).Node = node
}
