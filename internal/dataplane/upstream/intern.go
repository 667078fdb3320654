package upstream

import (
	"fmt"
	"runtime"
	"sync"
	"unique"
	"weak"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Interner makes the parts of compiled endpoints that repeat across a mesh
// share one immutable value instead of one copy per host. In a mesh of
// 1,000 services almost every endpoint carries the same transport socket
// match metadata ({"tlsMode":"istio"}, or none); compiled one by one, each
// of the 5,000 hosts kept its own decoded Struct, map and Values.
//
// Equal socket-match metadata (equal deterministic serialization) maps to
// one *corev3.Metadata, built afresh from the serialized bytes, so a host
// holds no pointer into the message it was compiled from. The table holds
// its values weakly: an entry goes away once no compiled endpoint uses it,
// so a mesh whose metadata changes does not grow it. Locality names and
// host names are canonicalised with the standard library's unique package.
//
// An Interner is safe for concurrent use; one serves a cluster manager
// (every EDS assignment it compiles), so equal metadata is shared across
// clusters. Values it returns are shared and must not be modified.
type Interner struct {
	mu sync.Mutex
	// metadata maps a serialized transport_socket_match Struct to the one
	// Metadata that holds it.
	metadata map[string]weak.Pointer[corev3.Metadata]
	// buf is the serialization scratch buffer, used under mu.
	buf []byte
}

// NewInterner returns an empty Interner.
func NewInterner() *Interner {
	return &Interner{metadata: map[string]weak.Pointer[corev3.Metadata]{}}
}

// Endpoints is the package's Endpoints, with the endpoints' repeated parts
// shared through in.
func (in *Interner) Endpoints(cla *endpointv3.ClusterLoadAssignment) (*EndpointSet, error) {
	s, err := endpoints(cla, false, in)
	if err != nil {
		return nil, fmt.Errorf("cluster load assignment %q: %w", cla.GetClusterName(), err)
	}
	return s, nil
}

// Len is the number of distinct metadata values the table knows (some may
// be unreachable and about to be forgotten).
func (in *Interner) Len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.metadata)
}

// socketMatch returns the shared Metadata holding fm as the transport
// socket match namespace; nil for a nil fm.
func (in *Interner) socketMatch(fm *structpb.Struct) (*corev3.Metadata, error) {
	if fm == nil {
		return nil, nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(in.buf[:0], fm)
	if err != nil {
		return nil, fmt.Errorf("metadata.filter_metadata[%q]: %w", TransportSocketMatchKey, err)
	}
	in.buf = b
	if wp, ok := in.metadata[string(b)]; ok {
		if md := wp.Value(); md != nil {
			return md, nil
		}
	}
	// A fresh Struct decoded from the bytes: nothing of the caller's
	// message (maps, Values, strings) is reachable from it.
	st := &structpb.Struct{}
	if err := proto.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("metadata.filter_metadata[%q]: %w", TransportSocketMatchKey, err)
	}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{TransportSocketMatchKey: st}}
	key := string(b)
	in.metadata[key] = weak.Make(md)
	runtime.AddCleanup(md, in.forget, key)
	return md, nil
}

// forget drops key once its Metadata is unreachable, unless a newer value
// replaced it in the meantime.
func (in *Interner) forget(key string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if wp, ok := in.metadata[key]; ok && wp.Value() == nil {
		delete(in.metadata, key)
	}
}

// str returns the canonical copy of s: equal names compiled while one is
// alive share their bytes, and none is a pointer into a decoded message.
func str(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}
