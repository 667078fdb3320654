package xdsclient

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// maxDetailLen bounds the error_detail message of a NACK.
const maxDetailLen = 4096

// typeState is what the client keeps about one type. Owned by Run's
// goroutine, like everything in state.
type typeState struct {
	rt *resourceType
	// names is the subscription of a named type (EDS, RDS), sorted.
	names []string
	// accepted is the last accepted set. It is replaced, never modified.
	accepted map[string]resource
	// version is the version of the last accepted response.
	version string
	// packer compresses the kept bodies of the type's resources.
	packer packer

	// Per stream, reset by startStream:
	opened bool   // the type's first request was sent
	nonce  string // nonce of the last response handled
	// nacked is the error_detail of the last response handled, if it was
	// rejected.
	nacked *statuspb.Status
}

func (t *typeState) subscribed(name string) bool {
	_, ok := slices.BinarySearch(t.names, name)
	return ok
}

// state is the protocol-independent state machine of the client: it takes
// decoded responses and timer ticks, calls the consumer, and queues the
// requests to send (out). It does no I/O; client.go moves bytes.
type state struct {
	proto    protocol
	consumer Consumer
	metrics  Metrics
	log      *slog.Logger
	node     *corev3.Node
	timeout  time.Duration // initial fetch timeout; 0: none
	board    *board
	types    [numTypes]*typeState

	// Warming (see doc.go).
	cdsSeen      bool // a CDS response was handled, accepted or not
	ldsStarted   bool // LDS is subscribed
	initDeadline time.Time
	warming      map[string]struct{} // EDS names subscribed and not yet received
	warmDeadline time.Time

	// Per stream.
	connected bool
	nodeSent  bool
	held      []*response // LDS/RDS responses waiting for clusters to warm
	out       []proto.Message
}

func newState(p protocol, cfg *Config, b *board, now time.Time) *state {
	s := &state{
		proto:    p,
		consumer: cfg.Consumer,
		metrics:  cfg.Metrics,
		log:      cfg.Logger,
		node:     cfg.Node,
		timeout:  cfg.InitialFetchTimeout,
		board:    b,
		warming:  map[string]struct{}{},
	}
	for i, rt := range resourceTypes() {
		s.types[i] = &typeState{rt: rt}
	}
	s.initDeadline = s.deadline(now)
	return s
}

func (s *state) deadline(now time.Time) time.Time {
	if s.timeout <= 0 {
		return time.Time{}
	}
	return now.Add(s.timeout)
}

func (s *state) typeOf(url string) *typeState {
	for _, t := range s.types {
		if t.rt.url == url {
			return t
		}
	}
	return nil
}

// switchProtocol changes the protocol for the next stream (fallback). The
// accepted sets stay; their versions are the other protocol's, so the
// first responses are applied again if only the versions differ.
func (s *state) switchProtocol(p protocol) {
	s.proto = p
	for _, t := range s.types {
		t.version = ""
	}
}

// startStream resets the per-stream state and queues the first request of
// every type subscribed so far, in delivery order.
func (s *state) startStream(now time.Time) {
	s.connected, s.nodeSent, s.held, s.out = false, false, nil, nil
	for _, t := range s.types {
		t.opened, t.nonce, t.nacked = false, "", nil
	}
	if len(s.warming) > 0 {
		s.warmDeadline = s.deadline(now)
	}
	if !s.ldsStarted && !s.initDeadline.IsZero() && !now.Before(s.initDeadline) {
		s.initTimeout() // before connected: LDS is opened below, in order
	}
	s.connected = true
	for _, t := range s.types {
		s.open(t)
	}
}

// endStream drops what belonged to the stream. Held responses were not
// ACKed; the server sends their content again on the next stream.
func (s *state) endStream() {
	s.connected, s.held, s.out = false, nil, nil
}

// open sends the first request of t on this stream if t is subscribed.
func (s *state) open(t *typeState) {
	if !s.connected || t.opened || (!t.rt.wildcard && len(t.names) == 0) || (t.rt.index == lds && !s.ldsStarted) {
		return
	}
	t.opened = true
	s.send(s.proto.initial(t))
}

func (s *state) send(req proto.Message) {
	if !s.nodeSent {
		s.proto.setNode(req, s.node)
		s.nodeSent = true
	}
	s.out = append(s.out, req)
}

// takeOut returns the queued requests.
func (s *state) takeOut() []proto.Message {
	out := s.out
	s.out = nil
	return out
}

// nextDeadline is when tick must run next; zero if never.
func (s *state) nextDeadline() time.Time {
	var d time.Time
	if !s.ldsStarted {
		d = s.initDeadline
	}
	if len(s.warming) > 0 && !s.warmDeadline.IsZero() && (d.IsZero() || s.warmDeadline.Before(d)) {
		d = s.warmDeadline
	}
	return d
}

// tick handles the warming timeouts.
func (s *state) tick(now time.Time) {
	if !s.ldsStarted && !s.initDeadline.IsZero() && !now.Before(s.initDeadline) {
		s.initTimeout()
	}
	if len(s.warming) > 0 && !s.warmDeadline.IsZero() && !now.Before(s.warmDeadline) {
		s.log.Warn("xds clusters still warming after the initial fetch timeout; releasing listeners and routes",
			"timeout", s.timeout, "eds", slices.Sorted(maps.Keys(s.warming)))
		clear(s.warming)
	}
	s.settle(now)
}

func (s *state) initTimeout() {
	s.log.Warn("xds initial fetch timeout: requesting listeners before clusters are warm",
		"timeout", s.timeout, "cds_received", s.cdsSeen, "eds_pending", len(s.warming))
	clear(s.warming)
	s.startLDS()
}

func (s *state) startLDS() {
	s.ldsStarted = true
	s.open(s.types[lds])
}

// handle takes one response. LDS and RDS responses wait while clusters
// warm, so that the consumer sees a new cluster's endpoints before the
// listeners and routes that use it.
func (s *state) handle(r *response, now time.Time) {
	t := s.typeOf(r.typeURL)
	if t == nil {
		s.log.Warn("xds response of an unexpected type ignored", "type", r.typeURL, "nonce", r.nonce)
		return
	}
	s.metrics.OnResponse(r.typeURL, len(r.resources))
	if (t.rt.index == lds || t.rt.index == rds) && len(s.warming) > 0 {
		s.log.Debug("xds response held while clusters warm", "type", t.rt.short, "nonce", r.nonce, "eds_pending", len(s.warming))
		s.held = append(s.held, r)
		return
	}
	s.process(t, r, now)
	s.settle(now)
}

// settle starts LDS and releases held responses once nothing warms.
func (s *state) settle(now time.Time) {
	if len(s.warming) > 0 {
		return
	}
	if !s.ldsStarted && s.cdsSeen {
		s.startLDS()
	}
	for len(s.held) > 0 && len(s.warming) == 0 {
		r := s.held[0]
		s.held[0] = nil // the backing array must not keep it
		s.held = s.held[1:]
		s.process(s.typeOf(r.typeURL), r, now)
	}
}

// process decodes, validates and applies one response, then ACKs or NACKs
// it. The response is accepted or rejected as a whole.
func (s *state) process(t *typeState, r *response, now time.Time) {
	t.nonce = r.nonce
	decoded, msgs, errs := s.decodeAll(t, r)
	if len(errs) == 0 {
		next := s.proto.merge(t, r, decoded)
		if !sameSet(t.accepted, next) {
			errs = s.apply(t, next, msgs)
		}
		if len(errs) == 0 {
			s.accept(t, r, next, decoded, now)
			return
		}
	}
	s.reject(t, r, errs, now)
}

// decodeAll decodes every resource of r: the resources as kept, and their
// messages by name for the consumer; errs is keyed by resource name (or
// position, when the name is unknown).
func (s *state) decodeAll(t *typeState, r *response) ([]resource, map[string]proto.Message, map[string]error) {
	var errs map[string]error
	fail := func(name string, err error) {
		if errs == nil {
			errs = map[string]error{}
		}
		errs[name] = err
	}
	out := make([]resource, 0, len(r.resources))
	msgs := make(map[string]proto.Message, len(r.resources))
	for i, raw := range r.resources {
		res, msg, err := t.rt.decode(raw.body, raw.name, raw.version)
		name := res.name
		if name == "" {
			name = raw.name
		}
		if name == "" {
			name = fmt.Sprintf("resources[%d]", i)
		}
		if err != nil {
			fail(name, err)
			continue
		}
		if _, dup := msgs[name]; dup {
			fail(name, fmt.Errorf("duplicate resource name"))
			continue
		}
		msgs[name] = msg
		out = append(out, res)
	}
	if err := t.packer.packAll(out); err != nil {
		// Compressing into memory does not fail in practice; the bodies
		// not packed stay as they are (unmarshal reads both).
		s.log.Warn("xds resources kept uncompressed", "type", t.rt.short, "error", err)
	}
	return out, msgs, errs
}

// apply gives the consumer a type's complete set; msgs are the messages
// decoded from the response, if any. They are dropped when the consumer
// returns: the client keeps resources serialized only.
func (s *state) apply(t *typeState, next map[string]resource, msgs map[string]proto.Message) map[string]error {
	set := newSet(t.rt, next, t.accepted, msgs)
	defer set.finish()
	var errs map[string]error
	for name, err := range s.consumer.Apply(set) {
		if err == nil {
			continue
		}
		if errs == nil {
			errs = map[string]error{}
		}
		errs[name] = err
	}
	return errs
}

func (s *state) accept(t *typeState, r *response, next map[string]resource, decoded []resource, now time.Time) {
	t.accepted, t.version, t.nacked = next, r.version, nil
	s.board.accepted(t.rt.index, r.version, next, now)
	s.send(s.proto.reply(t, r.nonce, nil))
	s.log.Debug("xds response accepted", "type", t.rt.short, "version", r.version, "nonce", r.nonce,
		"resources", len(next), "received", len(decoded), "removed", len(r.removed))
	switch t.rt.index {
	case cds:
		s.cdsSeen = true
		s.setNames(s.types[eds], depNames(next), now)
	case lds:
		s.setNames(s.types[rds], depNames(next), now)
	case eds:
		for _, res := range decoded {
			delete(s.warming, res.name)
		}
		for _, name := range r.removed {
			delete(s.warming, name)
		}
	}
}

func (s *state) reject(t *typeState, r *response, errs map[string]error, now time.Time) {
	detail := nackDetail(t.rt.short, errs)
	t.nacked = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: detail}
	s.board.rejected(t.rt.index, detail, now)
	s.metrics.OnNACK(t.rt.url, detail)
	s.log.Warn("xds response rejected (NACK)", "type", t.rt.short, "version", r.version, "nonce", r.nonce,
		"kept_version", t.version, "err", detail)
	s.send(s.proto.reply(t, r.nonce, t.nacked))
	switch t.rt.index {
	case cds:
		s.cdsSeen = true // as Envoy: a rejected first CDS does not block start-up
	case eds:
		clear(s.warming) // as Envoy: a failed update ends warming
	}
}

// nackDetail formats "<type> <name>: <reason>" for each error, sorted by
// name, joined by "; ", bounded by maxDetailLen.
func nackDetail(short string, errs map[string]error) string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(errs)) {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s: %v", short, name, errs[name])
		if b.Len() > maxDetailLen {
			break
		}
	}
	msg := b.String()
	if len(msg) > maxDetailLen {
		msg = msg[:maxDetailLen-3] + "..."
	}
	return msg
}

// setNames changes the subscription of a named type: resources no longer
// subscribed are dropped (and the consumer given the smaller set), new EDS
// names start warming, and the server is told.
func (s *state) setNames(t *typeState, names []string, now time.Time) {
	added, removed := diffNames(t.names, names)
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	t.names = names
	if dropped := s.drop(t, removed); dropped != nil {
		// Not a response: there is nothing to NACK, and the resources are
		// gone from the server's view too. The consumer's objection is
		// logged and the smaller set kept.
		if errs := s.apply(t, dropped, nil); len(errs) > 0 {
			s.log.Warn("xds consumer objected to dropping unsubscribed resources", "type", t.rt.short,
				"err", nackDetail(t.rt.short, errs))
		}
		t.accepted = dropped
		s.board.accepted(t.rt.index, t.version, dropped, time.Time{})
	}
	if t.rt.index == eds {
		for _, name := range removed {
			delete(s.warming, name)
		}
		for _, name := range added {
			if _, ok := t.accepted[name]; ok {
				continue
			}
			if len(s.warming) == 0 {
				s.warmDeadline = s.deadline(now)
			}
			s.warming[name] = struct{}{}
		}
	}
	if !s.connected {
		return
	}
	if !t.opened {
		s.open(t)
		return
	}
	s.send(s.proto.resubscribe(t, added, removed))
}

// drop returns t's accepted set without the removed names, or nil if none
// of them was there.
func (s *state) drop(t *typeState, removed []string) map[string]resource {
	n := 0
	for _, name := range removed {
		if _, ok := t.accepted[name]; ok {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	next := maps.Clone(t.accepted)
	for _, name := range removed {
		delete(next, name)
	}
	return next
}
