package xdsclient

import (
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
)

// Status is the client's state for admin and proxy-status.
type Status struct {
	Server string
	// Protocol is the variant in use (SotW after a fallback).
	Protocol Protocol
	// Connected is true from the first response on a stream until the
	// stream ends.
	Connected bool
	// ConnectedSince is when the current stream got its first response.
	ConnectedSince time.Time
	// LastError is why the last stream ended; empty if none has.
	LastError string
	// Reconnects counts streams ended and retried.
	Reconnects int
	// Types holds CDS, EDS, LDS, RDS, in that order.
	Types []TypeStatus
}

// TypeStatus is the state of one resource type.
type TypeStatus struct {
	TypeURL string
	// Version is the version of the last ACKed response: version_info in
	// state of the world, system_version_info in delta.
	Version string
	// Resources is the number of resources in the accepted set.
	Resources int
	// LastUpdate is when a response was last ACKed.
	LastUpdate time.Time
	// LastNACK is the error_detail of the last rejected response, kept
	// after later ACKs (compare LastNACKTime with LastUpdate); empty if
	// none was rejected.
	LastNACK     string
	LastNACKTime time.Time
}

// board holds what Status and Resources report. Run's goroutine writes it;
// any goroutine reads it. The sets it holds are never modified.
type board struct {
	mu    sync.Mutex
	st    Status
	sets  [numTypes]map[string]resource
	types [numTypes]*resourceType // immutable
}

func newBoard(server string, p Protocol) *board {
	b := &board{st: Status{Server: server, Protocol: p, Types: make([]TypeStatus, numTypes)}}
	b.types = resourceTypes()
	for i, rt := range b.types {
		b.st.Types[i].TypeURL = rt.url
	}
	return b
}

func (b *board) snapshot() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.st
	st.Types = append([]TypeStatus(nil), b.st.Types...)
	return st
}

// resources returns the accepted set of url's type, and the type.
func (b *board) resources(url string) (map[string]resource, *resourceType) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, t := range b.st.Types {
		if t.TypeURL == url {
			return b.sets[i], b.types[i]
		}
	}
	return nil, nil
}

// accepted records an accepted set; a zero now (a set reduced by an
// unsubscription, not a response) leaves LastUpdate alone.
func (b *board) accepted(i int, version string, set map[string]resource, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sets[i] = set
	t := &b.st.Types[i]
	t.Version, t.Resources = version, len(set)
	if !now.IsZero() {
		t.LastUpdate = now
	}
}

func (b *board) rejected(i int, detail string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &b.st.Types[i]
	t.LastNACK, t.LastNACKTime = detail, now
}

func (b *board) connected(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Connected, b.st.ConnectedSince = true, now
}

func (b *board) disconnected(err error, retry bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Connected = false
	if err != nil {
		b.st.LastError = err.Error()
	}
	if retry {
		b.st.Reconnects++
	}
}

func (b *board) setProtocol(p Protocol) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Protocol = p
}

// Status returns the client's current status.
func (c *Client) Status() Status { return c.board.snapshot() }

// Resources returns the last accepted resources of a type (name →
// message), nil for an unknown type. The client keeps resources
// serialized: every call decodes them anew, and the map and the messages
// are the caller's.
func (c *Client) Resources(typeURL string) (map[string]proto.Message, error) {
	set, rt := c.board.resources(typeURL)
	if rt == nil {
		return nil, nil
	}
	out := make(map[string]proto.Message, len(set))
	for name, r := range set {
		m, err := rt.unmarshal(r)
		if err != nil {
			return nil, err
		}
		out[name] = m
	}
	return out, nil
}
