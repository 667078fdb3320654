package xdsclient

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// errSetDone is Msg's error on a Set used after the Apply it was given to.
var errSetDone = errors.New("xdsclient: Set used after Apply returned")

// Set is what a Consumer is given: one type's complete set of accepted
// resources (if the consumer accepts it) with the set accepted before, for
// diffs. It implements xdsset.Set.
//
// The client keeps each resource serialized; a Set decodes on demand.
// Messages of the response being applied were decoded for validation and
// are handed out as they are; others are decoded from the kept bytes when
// Msg asks for them. Decoded messages are dropped when Apply returns: a
// Set must not be used after that (Msg then fails), and a consumer keeps
// what it compiled, not the messages, so that only the serialized form
// stays in memory.
type Set struct {
	rt   *resourceType
	cur  map[string]resource // the set to apply
	prev map[string]resource // the last accepted set
	// msgs holds the decoded messages: those of the response, and those
	// Msg decoded since. nil once the Set is done.
	msgs map[string]proto.Message
	done bool
}

func newSet(rt *resourceType, cur, prev map[string]resource, decoded map[string]proto.Message) *Set {
	if decoded == nil {
		decoded = map[string]proto.Message{}
	}
	return &Set{rt: rt, cur: cur, prev: prev, msgs: decoded}
}

// finish drops the decoded messages.
func (s *Set) finish() {
	s.done, s.msgs = true, nil
}

// TypeURL is the resources' type.
func (s *Set) TypeURL() string { return s.rt.url }

// Len is the number of resources.
func (s *Set) Len() int { return len(s.cur) }

// Names returns the names of the resources, sorted; the slice is the
// caller's.
func (s *Set) Names() []string { return slices.Sorted(maps.Keys(s.cur)) }

// Removed returns the names of the last accepted set that this one does
// not have, sorted.
func (s *Set) Removed() []string {
	var out []string
	for name := range s.prev {
		if _, ok := s.cur[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Version is a resource's version ("" if the set does not have it): the
// server's per-resource version in delta, a hash of the serialized body
// in state of the world. The same name with the same version is the same
// content; versions of a delta and a state-of-the-world stream (after a
// fallback) are not comparable, and compare unequal.
func (s *Set) Version(name string) string { return s.cur[name].version }

// Changed reports whether the resource is new or has another version than
// in the last accepted set.
func (s *Set) Changed(name string) bool {
	r, ok := s.cur[name]
	if !ok {
		return false
	}
	p, had := s.prev[name]
	return !had || p.version != r.version
}

// Msg returns the resource's message: the one decoded from the response
// being applied, else decoded from the kept bytes (once per Set). It
// fails for a name the set does not have and after Apply returned. The
// message must not be modified or kept.
func (s *Set) Msg(name string) (proto.Message, error) {
	if s.done {
		return nil, errSetDone
	}
	r, ok := s.cur[name]
	if !ok {
		return nil, fmt.Errorf("%s %q is not in the set", s.rt.short, name)
	}
	if m, ok := s.msgs[name]; ok {
		return m, nil
	}
	m, err := s.rt.unmarshal(r)
	if err != nil {
		return nil, err
	}
	s.msgs[name] = m
	return m, nil
}

// SetOf returns the Set a Consumer would be given if a state-of-the-world
// response carried msgs (name → message) after the set prev was accepted
// (nil: none): every message goes through the client's decoding and
// validation, and versions are hashes of the serialized bodies. It is for
// consumers' tests and for callers that feed a Consumer without a server.
// The Set is not invalidated after use.
func SetOf(typeURL string, msgs map[string]proto.Message, prev *Set) (*Set, error) {
	var rt *resourceType
	for _, t := range resourceTypes() {
		if t.url == typeURL {
			rt = t
		}
	}
	if rt == nil {
		return nil, fmt.Errorf("xdsclient: unknown resource type %q", typeURL)
	}
	rs := make([]resource, 0, len(msgs))
	decoded := make(map[string]proto.Message, len(msgs))
	for name, m := range msgs {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("xdsclient: %s %q: %w", rt.short, name, err)
		}
		r, msg, err := rt.decode(&anypb.Any{TypeUrl: typeURL, Value: b}, name, "")
		if err != nil {
			return nil, fmt.Errorf("xdsclient: %s %q: %w", rt.short, name, err)
		}
		rs, decoded[name] = append(rs, r), msg
	}
	if err := new(packer).packAll(rs); err != nil {
		return nil, fmt.Errorf("xdsclient: %s: %w", rt.short, err)
	}
	cur := make(map[string]resource, len(rs))
	for _, r := range rs {
		cur[r.name] = r
	}
	var before map[string]resource
	if prev != nil {
		before = prev.cur
	}
	return newSet(rt, cur, before, decoded), nil
}
