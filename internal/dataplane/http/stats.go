package http

// Stat is one of the connection manager's limit counters: a request
// refused or a connection closed because a limit or timeout was hit. Its
// String is Envoy's statistic name (rooted at http.<stat_prefix>. for the
// connection manager's own, at http1. or http2. for codec statistics).
type Stat uint8

// The limit counters.
const (
	// StatProtocolError: the HTTP/1 codec refused a request head (400,
	// 431 head too large, 501, 505, 417) and closed the connection, or an
	// HTTP/1 request had more than max_headers_count headers (431).
	StatProtocolError Stat = iota
	// StatHeaderTimeout: a request head started arriving and was not
	// complete within request_headers_timeout; the connection was closed.
	StatHeaderTimeout
	// StatIdleTimeout: a connection with no request in flight was closed
	// at idle_timeout (HTTP/1; the first request's wait counts here when
	// not a byte of it arrived).
	StatIdleTimeout
	// StatStreamIdleTimeout: a request saw no activity for
	// stream_idle_timeout (or the route's idle_timeout).
	StatStreamIdleTimeout
	// StatRequestTimeout: request_timeout fired before the request body
	// was read.
	StatRequestTimeout
	// StatPrematureResets: an HTTP/2 connection closed for resetting too
	// many streams early (rapid reset, SECURITY C1).
	StatPrematureResets
	// StatHTTP1Underscores, StatHTTP2Underscores: requests refused (400)
	// for a header name with an underscore (headers_with_underscores_action
	// REJECT_REQUEST).
	StatHTTP1Underscores
	StatHTTP2Underscores
	// StatHeaderOverflow: an HTTP/2 header block far over
	// max_request_headers_kb (CONTINUATION flood, C2) closed the
	// connection, or an HTTP/2 request had more than max_headers_count
	// headers (431).
	StatHeaderOverflow
	// StatEmptyFramesFlood: more consecutive empty DATA/HEADERS/
	// CONTINUATION frames without END_STREAM than allowed (C4).
	StatEmptyFramesFlood
	// StatPriorityFramesFlood: too many PRIORITY frames per stream (C4).
	StatPriorityFramesFlood
	// StatWindowUpdateFramesFlood: too many WINDOW_UPDATE frames for the
	// DATA frames sent (C4).
	StatWindowUpdateFramesFlood
	// StatOutboundControlFlood: too many PING and SETTINGS frames waiting
	// for their acknowledgement to be written (a peer that floods them and
	// does not read, C4).
	StatOutboundControlFlood

	numStats
)

var statNames = [numStats]string{
	StatProtocolError:           "downstream_cx_protocol_error",
	StatHeaderTimeout:           "downstream_rq_header_timeout",
	StatIdleTimeout:             "downstream_cx_idle_timeout",
	StatStreamIdleTimeout:       "downstream_rq_idle_timeout",
	StatRequestTimeout:          "downstream_rq_timeout",
	StatPrematureResets:         "downstream_rq_too_many_premature_resets",
	StatHTTP1Underscores:        "http1.requests_rejected_with_underscores_in_headers",
	StatHTTP2Underscores:        "http2.requests_rejected_with_underscores_in_headers",
	StatHeaderOverflow:          "http2.header_overflow",
	StatEmptyFramesFlood:        "http2.inbound_empty_frames_flood",
	StatPriorityFramesFlood:     "http2.inbound_priority_frames_flood",
	StatWindowUpdateFramesFlood: "http2.inbound_window_update_frames_flood",
	StatOutboundControlFlood:    "http2.outbound_control_flood",
}

// String returns Envoy's name of the statistic.
func (s Stat) String() string {
	if s < numStats {
		return statNames[s]
	}
	return "unknown"
}

// Stats returns every limit counter, in order.
func Stats() []Stat {
	out := make([]Stat, numStats)
	for i := range out {
		out[i] = Stat(i)
	}
	return out
}

// StatsSink receives the limit counters of connection managers (Deps.Stats).
// Count is called from connection goroutines, concurrently, only when a
// limit is hit; it must not block.
type StatsSink interface {
	Count(statPrefix string, s Stat)
}

// count records s for this manager.
func (m *Manager) count(s Stat) {
	if m.stats != nil {
		m.stats.Count(m.cfg.statPrefix, s)
	}
}
