package xds

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Envoy v3 type URLs.
const (
	apiTypePrefix = "type.googleapis.com/"
	ClusterType   = apiTypePrefix + "envoy.config.cluster.v3.Cluster"
	EndpointType  = apiTypePrefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType  = apiTypePrefix + "envoy.config.listener.v3.Listener"
	RouteType     = apiTypePrefix + "envoy.config.route.v3.RouteConfiguration"
	SecretType    = apiTypePrefix + "envoy.extensions.transport_sockets.tls.v3.Secret"
)

// ShortName returns Istio's short name of a type URL (CDS, EDS, LDS, RDS, SDS).
func ShortName(typeURL string) string {
	switch typeURL {
	case ClusterType:
		return "CDS"
	case EndpointType:
		return "EDS"
	case ListenerType:
		return "LDS"
	case RouteType:
		return "RDS"
	case SecretType:
		return "SDS"
	}
	return typeURL
}

// Resource is one generated, marshalled resource. Version is a hash of the
// marshalled bytes, so equal content gives equal versions across pushes and
// proxies. Resources are immutable once built and may be shared.
type Resource struct {
	Name    string
	Version string
	Body    *anypb.Any
}

// NewResource marshals m deterministically into a Resource.
func NewResource(name string, m proto.Message) (Resource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return Resource{}, fmt.Errorf("marshalling %s %q: %w", m.ProtoReflect().Descriptor().FullName(), name, err)
	}
	typeURL := apiTypePrefix + string(m.ProtoReflect().Descriptor().FullName())
	return Resource{
		Name:    name,
		Version: fmt.Sprintf("%016x", xxhash.Sum64(b)),
		Body:    &anypb.Any{TypeUrl: typeURL, Value: b},
	}, nil
}

// Named is implemented by every Envoy resource type with a name.
type Named interface {
	proto.Message
	GetName() string
}

// Marshal turns generated messages into Resources, keyed by the name the
// message carries (ClusterLoadAssignment uses ClusterName: see MarshalBy).
func Marshal[T Named](msgs []T) ([]Resource, error) {
	return MarshalBy(msgs, func(m T) string { return m.GetName() })
}

// MarshalBy turns generated messages into Resources keyed by name(m), for
// messages whose name is another field, such as
// (*ClusterLoadAssignment).GetClusterName.
func MarshalBy[T proto.Message](msgs []T, name func(T) string) ([]Resource, error) {
	out := make([]Resource, 0, len(msgs))
	for _, m := range msgs {
		r, err := NewResource(name(m), m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
