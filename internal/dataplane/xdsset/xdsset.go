package xdsset

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
)

// Set is one xDS type's complete set of resources. Implementations are
// read by one goroutine, the one the Set is handed to.
type Set interface {
	// Names returns the names of the resources, sorted. The slice is the
	// caller's.
	Names() []string
	// Version identifies the content of a resource: the same name with
	// the same version is the same content. It is "" for a name not in the
	// set; an empty version is equal to none (see Unchanged).
	Version(name string) string
	// Msg returns a resource's message, decoded if need be. The message
	// must not be modified; callers keep what they compile from it, not
	// the message.
	Msg(name string) (proto.Message, error)
}

// Unchanged reports whether a resource whose version was old and is now
// version is the same content: both equal and not empty.
func Unchanged(old, version string) bool { return version != "" && old == version }

// nilVersion is the version Of gives a nil message.
const nilVersion = "nil"

// Of returns a Set of msgs, versioned by a hash of each message's
// deterministic serialization ("nil" for a nil message, which Msg then
// returns as nil). It keeps msgs, not a copy.
func Of[T proto.Message](msgs map[string]T) Set {
	s := messages{msgs: make(map[string]proto.Message, len(msgs)), versions: make(map[string]string, len(msgs))}
	for name, m := range msgs {
		s.msgs[name] = m
		s.versions[name] = ContentVersion(m)
	}
	return s
}

// ContentVersion is the version Of gives m: a hash of its deterministic
// serialization, "nil" for a nil message, and "" (never equal to a
// version) if m cannot be serialized.
func ContentVersion(m proto.Message) string {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nilVersion
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

type messages struct {
	msgs     map[string]proto.Message
	versions map[string]string
}

func (s messages) Names() []string { return slices.Sorted(maps.Keys(s.msgs)) }

func (s messages) Version(name string) string { return s.versions[name] }

func (s messages) Msg(name string) (proto.Message, error) {
	m := s.msgs[name]
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, nil
	}
	return m, nil
}
