package tracing

import (
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// Propagation header names (canonical form).
const (
	headerTraceparent = "Traceparent"
	headerTracestate  = "Tracestate"
	headerB3          = "B3"
	headerB3TraceID   = "X-B3-Traceid"
	headerB3SpanID    = "X-B3-Spanid"
	headerB3Parent    = "X-B3-Parentspanid"
	headerB3Sampled   = "X-B3-Sampled"
	headerB3Flags     = "X-B3-Flags"
	headerForceTrace  = "X-Envoy-Force-Trace"
	headerClientTrace = "X-Client-Trace-Id"
)

// Format says which propagation format a context was read from.
type Format uint8

const (
	FormatNone     Format = iota
	FormatW3C             // traceparent (+ tracestate)
	FormatB3Single        // b3
	FormatB3Multi         // x-b3-*
)

// SpanContext is a trace context as propagated between services.
type SpanContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	// Sampled is the propagated sampling decision, when SampledSet (B3
	// may defer the decision to the receiver).
	Sampled    bool
	SampledSet bool
	// TraceState is W3C's tracestate, passed on unchanged.
	TraceState string
	Format     Format
}

// Valid reports whether the context carries trace and span ids.
func (sc SpanContext) Valid() bool {
	return sc.TraceID != [16]byte{} && sc.SpanID != [8]byte{}
}

// Extract reads the incoming context: W3C traceparent first, then B3's
// single header, then B3's multiple headers. A malformed header is
// ignored (the request starts a new trace), as Envoy does.
func Extract(h http.Header) (SpanContext, bool) {
	if sc, ok := parseTraceparent(h1wire.Get(h, headerTraceparent)); ok {
		sc.TraceState = strings.Join(h[headerTracestate], ",")
		return sc, true
	}
	if sc, ok := parseB3Single(h1wire.Get(h, headerB3)); ok {
		return sc, true
	}
	return parseB3Multi(h)
}

// ExtractDecision reads a bare B3 sampling decision (b3: 0|1|d, or
// x-b3-sampled / x-b3-flags without ids): a caller's decision without a
// trace to join.
func ExtractDecision(h http.Header) (sampled, ok bool) {
	switch v := h1wire.Get(h, headerB3); v {
	case "0":
		return false, true
	case "1", "d":
		return true, true
	}
	if h1wire.Get(h, headerB3Flags) == "1" {
		return true, true
	}
	return parseSampled(h1wire.Get(h, headerB3Sampled))
}

// parseTraceparent parses version-traceid-parentid-flags. Version ff is
// invalid; version 00 is exactly 55 characters; later versions may append
// fields, which are ignored.
func parseTraceparent(v string) (SpanContext, bool) {
	var sc SpanContext
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return sc, false
	}
	ver, ok := hexByte(v[0:2])
	if !ok || ver == 0xff || (ver == 0 && len(v) != 55) || (len(v) > 55 && v[55] != '-') {
		return sc, false
	}
	if !decodeLowerHex(sc.TraceID[:], v[3:35]) || !decodeLowerHex(sc.SpanID[:], v[36:52]) {
		return sc, false
	}
	flags, ok := hexByte(v[53:55])
	if !ok || !sc.Valid() {
		return sc, false
	}
	sc.Sampled, sc.SampledSet, sc.Format = flags&1 == 1, true, FormatW3C
	return sc, true
}

// parseB3Single parses b3: traceid-spanid[-sampling[-parentspanid]].
func parseB3Single(v string) (SpanContext, bool) {
	var sc SpanContext
	parts := strings.Split(v, "-")
	if len(parts) < 2 || len(parts) > 4 {
		return sc, false
	}
	if !b3TraceID(sc.TraceID[:], parts[0]) || len(parts[1]) != 16 || !decodeLowerHex(sc.SpanID[:], parts[1]) || !sc.Valid() {
		return sc, false
	}
	if len(parts) >= 3 {
		switch parts[2] {
		case "0":
			sc.SampledSet = true
		case "1", "d":
			sc.Sampled, sc.SampledSet = true, true
		default:
			return SpanContext{}, false
		}
	}
	sc.Format = FormatB3Single
	return sc, true
}

func parseB3Multi(h http.Header) (SpanContext, bool) {
	var sc SpanContext
	tid, sid := h1wire.Get(h, headerB3TraceID), h1wire.Get(h, headerB3SpanID)
	if !b3TraceID(sc.TraceID[:], strings.ToLower(tid)) || len(sid) != 16 || !decodeLowerHex(sc.SpanID[:], strings.ToLower(sid)) || !sc.Valid() {
		return SpanContext{}, false
	}
	if h1wire.Get(h, headerB3Flags) == "1" {
		sc.Sampled, sc.SampledSet = true, true
	} else {
		sc.Sampled, sc.SampledSet = parseSampled(h1wire.Get(h, headerB3Sampled))
	}
	sc.Format = FormatB3Multi
	return sc, true
}

func parseSampled(v string) (sampled, ok bool) {
	switch v {
	case "1", "true", "d":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// b3TraceID decodes a 64- or 128-bit B3 trace id (64-bit ids are the
// lower half).
func b3TraceID(dst []byte, s string) bool {
	switch len(s) {
	case 32:
		return decodeLowerHex(dst, s)
	case 16:
		clear(dst[:8])
		return decodeLowerHex(dst[8:], s)
	}
	return false
}

func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

func hexByte(s string) (byte, bool) {
	var b [1]byte
	if !decodeLowerHex(b[:], s) {
		return 0, false
	}
	return b[0], true
}

// Inject writes sc, the span the request goes upstream as (parent its
// parent span, zero for a root), in both W3C and B3 multi-header form.
// The single b3 header is rewritten when the request carried one; a
// received tracestate is kept.
func Inject(h http.Header, sc SpanContext, parent [8]byte) {
	var tp [55]byte
	copy(tp[:], "00-")
	hex.Encode(tp[3:35], sc.TraceID[:])
	tp[35] = '-'
	hex.Encode(tp[36:52], sc.SpanID[:])
	copy(tp[52:], "-00")
	if sc.Sampled {
		tp[54] = '1'
	}
	h[headerTraceparent] = []string{string(tp[:])}
	if sc.TraceState != "" {
		h[headerTracestate] = []string{sc.TraceState}
	}
	trace, span := string(tp[3:35]), string(tp[36:52])
	sampled := "0"
	if sc.Sampled {
		sampled = "1"
	}
	h[headerB3TraceID] = []string{trace}
	h[headerB3SpanID] = []string{span}
	h[headerB3Sampled] = []string{sampled}
	delete(h, headerB3Flags)
	var ps string
	if parent != ([8]byte{}) {
		ps = hex.EncodeToString(parent[:])
		h[headerB3Parent] = []string{ps}
	} else {
		delete(h, headerB3Parent)
	}
	if _, ok := h[headerB3]; ok {
		v := trace + "-" + span + "-" + sampled
		if ps != "" {
			v += "-" + ps
		}
		h[headerB3] = []string{v}
	}
}
