package xdsclient

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
)

// Type URLs of the resources the client subscribes to.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// Indexes of the types in delivery order (CDS, EDS, LDS, RDS).
const (
	cds = iota
	eds
	lds
	rds
	numTypes
)

// resourceType describes one xDS type the client handles. The four values
// are built by resourceTypes and passed around; nothing is registered.
type resourceType struct {
	index int
	url   string
	short string // CDS, EDS, LDS, RDS: used in logs, status and NACK details
	// wildcard types (CDS, LDS) are subscribed as a whole; the others by
	// name, the names being derived from the accepted set of another type.
	wildcard bool
	newMsg   func() proto.Message
	name     func(proto.Message) string
	// deps returns the names of the dependent type a resource references
	// (CDS: its EDS service name; LDS: its RDS route_config_names) and does
	// the checks PGV cannot do (it does not look inside Any). May be nil.
	deps func(proto.Message) ([]string, error)
}

// resourceTypes returns the types in delivery order.
func resourceTypes() [numTypes]*resourceType {
	return [numTypes]*resourceType{
		{
			index: cds, url: ClusterType, short: "CDS", wildcard: true,
			newMsg: func() proto.Message { return new(clusterv3.Cluster) },
			name:   func(m proto.Message) string { return m.(*clusterv3.Cluster).GetName() },
			deps:   clusterDeps,
		},
		{
			index: eds, url: EndpointType, short: "EDS",
			newMsg: func() proto.Message { return new(endpointv3.ClusterLoadAssignment) },
			name:   func(m proto.Message) string { return m.(*endpointv3.ClusterLoadAssignment).GetClusterName() },
		},
		{
			index: lds, url: ListenerType, short: "LDS", wildcard: true,
			newMsg: func() proto.Message { return new(listenerv3.Listener) },
			name:   func(m proto.Message) string { return m.(*listenerv3.Listener).GetName() },
			deps:   listenerDeps,
		},
		{
			index: rds, url: RouteType, short: "RDS",
			newMsg: func() proto.Message { return new(routev3.RouteConfiguration) },
			name:   func(m proto.Message) string { return m.(*routev3.RouteConfiguration).GetName() },
		},
	}
}

// resource is one validated resource as the client keeps it: serialized,
// not decoded (a decoded message is several times larger, and the
// consumers keep what they compiled from it). Values are immutable once
// built and shared by the accepted sets, the board and Sets.
type resource struct {
	name string
	// version identifies the content: the server's version in delta, a
	// hash of the serialized body in state of the world.
	version string
	// body is the value of the resource's Any, the serialized message,
	// compressed by pk once decoded (packAll; nil pk: not compressed).
	body []byte
	pk   *packer
	deps []string
}

// decode unmarshals body into the type's message and validates it. want,
// if set, is the name the response gave the resource (delta), which must
// match the message's own name. It returns the resource, its body not yet
// packed (packAll), and the decoded message, which lives as long as the
// response's handling.
func (rt *resourceType) decode(body *anypb.Any, want, version string) (resource, proto.Message, error) {
	if body == nil {
		return resource{}, nil, errors.New("resource has no body")
	}
	if body.GetTypeUrl() != rt.url {
		return resource{}, nil, fmt.Errorf("resource of type %q in a %s response", body.GetTypeUrl(), rt.short)
	}
	msg := rt.newMsg()
	if err := proto.Unmarshal(body.GetValue(), msg); err != nil {
		return resource{}, nil, fmt.Errorf("unmarshalling: %w", err)
	}
	name := rt.name(msg)
	if name == "" {
		return resource{}, nil, errors.New("resource has no name")
	}
	if want != "" && want != name {
		return resource{}, nil, fmt.Errorf("resource named %q in the response but %q in its body", want, name)
	}
	if err := pgv.ValidateAll(msg); err != nil {
		return resource{name: name}, nil, fmt.Errorf("invalid: %w", err)
	}
	r := resource{name: name, version: version, body: body.GetValue()}
	if r.version == "" {
		r.version = contentVersion(body.GetValue())
	}
	if rt.deps != nil {
		deps, err := rt.deps(msg)
		if err != nil {
			return resource{name: name}, nil, err
		}
		r.deps = deps
	}
	return r, msg, nil
}

// unmarshal decodes a kept resource again. Its body was decoded and
// validated when it was accepted, so an error means memory corruption or
// a changed message type; it is reported, not hidden.
func (rt *resourceType) unmarshal(r resource) (proto.Message, error) {
	body := r.body
	if r.pk != nil {
		var err error
		if body, err = r.pk.unpack(r.body); err != nil {
			return nil, fmt.Errorf("%s %s: %w", rt.short, r.name, err)
		}
	}
	msg := rt.newMsg()
	if err := proto.Unmarshal(body, msg); err != nil {
		return nil, fmt.Errorf("%s %s: decoding the accepted resource: %w", rt.short, r.name, err)
	}
	return msg, nil
}

// contentVersion is the version of a resource the server gave none for:
// a hash of its serialized body.
func contentVersion(b []byte) string {
	h := fnv.New64a()
	h.Write(b)
	return strconv.FormatUint(h.Sum64(), 16)
}

// sameSet reports whether two sets hold the same names with the same
// versions.
func sameSet(a, b map[string]resource) bool {
	if len(a) != len(b) {
		return false
	}
	for name, ra := range a {
		rb, ok := b[name]
		if !ok || ra.version != rb.version {
			return false
		}
	}
	return true
}
