package xdsclient

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Protocol is an ADS variant.
type Protocol int

const (
	// Delta is incremental xDS (DeltaAggregatedResources), the default.
	Delta Protocol = iota
	// SotW is state of the world (StreamAggregatedResources).
	SotW
)

func (p Protocol) String() string {
	switch p {
	case Delta:
		return "delta"
	case SotW:
		return "sotw"
	}
	return "unknown"
}

// protocol is the wire format of one ADS variant: it encodes requests from
// the client's per-type state and decodes responses into the
// variant-independent response. It holds no state of its own.
type protocol interface {
	kind() Protocol
	method() string
	decode(b []byte) (*response, error)
	// initial is the first request of a type on a stream: what the client
	// subscribes to and, after a reconnect, what it already has.
	initial(t *typeState) proto.Message
	// reply ACKs (detail nil) or NACKs the response with nonce; t holds
	// the accepted state after the response was handled.
	reply(t *typeState, nonce string, detail *statuspb.Status) proto.Message
	// resubscribe announces that t.names changed by added and removed.
	resubscribe(t *typeState, added, removed []string) proto.Message
	// merge returns the type's set after the response (decoded holds its
	// valid resources), from the accepted set and the subscription.
	merge(t *typeState, r *response, decoded []resource) map[string]resource
	// setNode puts the node into a request (the first of a stream).
	setNode(req proto.Message, node *corev3.Node)
}

// response is one DiscoveryResponse or DeltaDiscoveryResponse.
type response struct {
	typeURL string
	// version is version_info (sotw) or system_version_info (delta).
	version   string
	nonce     string
	resources []rawResource
	// removed lists removed_resources (delta only).
	removed []string
}

// rawResource is a resource as received. name and version are set by
// delta only; sotw resources are named by their body.
type rawResource struct {
	name    string
	version string
	body    *anypb.Any
}
