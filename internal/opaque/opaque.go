// Package opaque is a protobuf type resolver for config dumps: it resolves
// types from the global registry and, for types this binary does not link
// (the generators emit some extension configs by type URL alone), a message
// type with no fields. Marshalling such an Any to JSON then prints its
// "@type" and drops its content instead of failing the whole dump; with
// protojson's DiscardUnknown, unmarshalling skips the content likewise.
//
// The control plane's and the proxy's config dumps and the proxy-config
// command use it, so it depends on nothing but the protobuf runtime.
package opaque

import (
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Resolver implements protoregistry's resolver interfaces for protojson
// (MarshalOptions.Resolver, UnmarshalOptions.Resolver). The zero value is
// ready to use and safe for concurrent use.
type Resolver struct {
	mu    sync.Mutex
	types map[protoreflect.FullName]protoreflect.MessageType
}

// FindExtensionByName looks up an extension in the global registry.
func (*Resolver) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(field)
}

// FindExtensionByNumber looks up an extension in the global registry.
func (*Resolver) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
}

// FindMessageByName returns the linked type, or an empty opaque one.
func (r *Resolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(name); err == nil {
		return mt, nil
	}
	return r.opaque(name)
}

// FindMessageByURL returns the linked type, or an empty opaque one.
func (r *Resolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByURL(url); err == nil {
		return mt, nil
	}
	name := url
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		name = url[i+1:]
	}
	return r.opaque(protoreflect.FullName(name))
}

// opaque builds (once per name) an empty message type with that full name.
func (r *Resolver) opaque(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if !name.IsValid() {
		return nil, fmt.Errorf("opaque type: invalid message name %q", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if mt, ok := r.types[name]; ok {
		return mt, nil
	}
	fd := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("opaque/" + string(name) + ".proto"),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String(string(name.Name()))}},
	}
	if pkg := name.Parent(); pkg != "" {
		fd.Package = proto.String(string(pkg))
	}
	f, err := protodesc.NewFile(fd, &protoregistry.Files{})
	if err != nil {
		return nil, fmt.Errorf("opaque type %s: %w", name, err)
	}
	mt := dynamicpb.NewMessageType(f.Messages().Get(0))
	if r.types == nil {
		r.types = map[protoreflect.FullName]protoreflect.MessageType{}
	}
	r.types[name] = mt
	return mt, nil
}
