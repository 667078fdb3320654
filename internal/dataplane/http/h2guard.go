package http

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// h2Guard watches the frames of one downstream HTTP/2 connection as
// net/http's server reads and writes them, and closes the connection at
// the flood limits net/http does not have (SECURITY C2, C4). It parses
// only the 9-byte frame headers as bytes pass (payloads are skipped by
// length; a PADDED frame's first payload byte, the pad length, is read),
// so its cost is a few instructions per frame and nothing per payload
// byte, with no allocation.
//
//	client ──► h2Guard.Read ──► net/http (HTTP/2 server)
//	              │ frame headers: DATA/HEADERS/CONTINUATION (empty, header block
//	              │ size, streams opened), PRIORITY, WINDOW_UPDATE, PING/SETTINGS
//	              ▼ over a limit: GOAWAY(ENHANCE_YOUR_CALM) when the write side is
//	                between frames, then the connection is closed; Stat counted
//	client ◄── h2Guard.Write ◄── net/http: DATA frames and PING/SETTINGS ACKs counted
//
// The limits are Envoy's (Http2ProtocolOptions), with its defaults:
//   - more than max_consecutive_inbound_frames_with_empty_payload (1)
//     consecutive DATA, HEADERS or CONTINUATION frames with no payload
//     (padding aside) and no END_STREAM: http2.inbound_empty_frames_flood;
//   - more than max_inbound_priority_frames_per_stream (100) × (1 + streams
//     opened) PRIORITY frames: http2.inbound_priority_frames_flood;
//   - more than 1 + 2 × (streams opened +
//     max_inbound_window_update_frames_per_data_frame_sent (10) × DATA
//     frames sent) WINDOW_UPDATE frames: http2.inbound_window_update_frames_flood;
//   - more than max_outbound_control_frames (1000) PING and SETTINGS frames
//     received whose acknowledgement has not been written (a peer that
//     floods them and does not read): http2.outbound_control_flood;
//   - a header block (HEADERS and its CONTINUATIONs) of more than
//     max_request_headers_kb plus 4 KiB (net/http's slack), compressed:
//     http2.header_overflow (the connection is reset, as Envoy does; a
//     CONTINUATION flood, C2). net/http usually closes such a connection
//     first (its decoded header list limit): a GOAWAY with an error it
//     writes while a header block is arriving is counted the same. A
//     block that fits but decodes to more than the limit (an HPACK bomb,
//     C3) is answered 431 by net/http, which this guard does not see.
//
// Reads belong to net/http's read goroutine; writes are serialised by wmu
// (net/http writes from one goroutine; the guard's GOAWAY is the other
// writer).
type h2Guard struct {
	net.Conn
	m   *Manager
	lim *h2Limits

	// Read side, owned by the reading goroutine.
	skip       int     // client preface bytes still to pass
	hdr        [9]byte // a frame header split across reads
	hn         int     // bytes of hdr filled
	remain     uint32  // payload bytes of the current frame still to pass
	padPending bool    // the current frame is PADDED; its pad length is next
	curLen     uint32  // the current frame's length (for the padding check)
	curFlags   byte
	empty      int    // consecutive empty frames
	streams    uint64 // header blocks completed (streams opened, trailers)
	priority   uint64
	windowUpd  uint64
	asks       uint64 // PING and SETTINGS frames received that need an ACK
	block      int    // bytes of the header block being received
	blockOpen  bool   // a header block is being received (reader's copy of inBlock)
	lastStream uint32 // the highest stream a HEADERS frame opened
	err        error

	// Write side.
	wmu     sync.Mutex
	whdr    [9]byte
	wn      int
	wremain uint32
	wclosed bool // the guard sent GOAWAY: no more writes
	dataOut atomic.Uint64
	acksOut atomic.Uint64
	// inBlock: the reader is inside a header block (HEADERS without
	// END_HEADERS so far); a connection error net/http sends meanwhile is
	// a header block it refused (too large: http2.header_overflow).
	inBlock atomic.Bool
}

// h2Limits are a connection manager's HTTP/2 flood limits.
type h2Limits struct {
	maxEmpty         uint64
	maxPriority      uint64 // per stream
	maxWindowUpdates uint64 // per DATA frame sent
	maxControl       uint64
	maxHeaderBlock   int
}

// Envoy's defaults (Http2ProtocolOptions).
const (
	defaultMaxConsecutiveEmptyFrames = 1
	defaultMaxPriorityPerStream      = 100
	defaultMaxWindowUpdatesPerData   = 10
	defaultMaxOutboundControlFrames  = 1000
)

// compileH2Limits reads the flood limits of http2_protocol_options.
func compileH2Limits(o *corev3.Http2ProtocolOptions, maxHeaderBytes int) h2Limits {
	l := h2Limits{
		maxEmpty:         defaultMaxConsecutiveEmptyFrames,
		maxPriority:      defaultMaxPriorityPerStream,
		maxWindowUpdates: defaultMaxWindowUpdatesPerData,
		maxControl:       defaultMaxOutboundControlFrames,
		maxHeaderBlock:   maxHeaderBytes + 4<<10,
	}
	if v := o.GetMaxConsecutiveInboundFramesWithEmptyPayload(); v != nil {
		l.maxEmpty = uint64(v.GetValue())
	}
	if v := o.GetMaxInboundPriorityFramesPerStream(); v != nil {
		l.maxPriority = uint64(v.GetValue())
	}
	if v := o.GetMaxInboundWindowUpdateFramesPerDataFrameSent(); v != nil && v.GetValue() > 0 {
		l.maxWindowUpdates = uint64(v.GetValue())
	}
	if v := o.GetMaxOutboundControlFrames(); v != nil && v.GetValue() > 0 {
		l.maxControl = uint64(v.GetValue())
	}
	return l
}

// HTTP/2 frame types and flags the guard looks at (RFC 9113).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameSettings     = 0x4
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8

	clientPrefaceLen = 24 // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	errCodeCalm      = 0xb
)

// floodError ends a guarded connection.
type floodError struct{ stat Stat }

func (e *floodError) Error() string { return "http2 flood: " + e.stat.String() }

// newH2Guard wraps c, whose next bytes are the client preface.
func (m *Manager) newH2Guard(c net.Conn) *h2Guard {
	return &h2Guard{Conn: c, m: m, lim: &m.cfg.h2lim, skip: clientPrefaceLen}
}

func (g *h2Guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.Conn.Read(p)
	if n > 0 {
		if s, bad := g.scan(p[:n]); bad {
			g.flood(s)
			return 0, g.err
		}
	}
	return n, err
}

// scan follows the frames in b; it reports the first limit exceeded.
func (g *h2Guard) scan(b []byte) (Stat, bool) {
	if g.skip > 0 {
		k := min(g.skip, len(b))
		g.skip -= k
		b = b[k:]
	}
	for len(b) > 0 {
		if g.remain > 0 {
			if g.padPending {
				g.padPending = false
				pad := uint32(b[0])
				if s, bad := g.emptyFrame(g.curLen <= 1+pad && g.curFlags&flagEndStream == 0); bad {
					return s, true
				}
			}
			if uint32(len(b)) <= g.remain {
				g.remain -= uint32(len(b))
				return 0, false
			}
			b = b[g.remain:]
			g.remain = 0
			continue
		}
		var h []byte
		if g.hn == 0 && len(b) >= 9 {
			h, b = b[:9], b[9:]
		} else {
			k := copy(g.hdr[g.hn:], b)
			g.hn += k
			b = b[k:]
			if g.hn < 9 {
				return 0, false
			}
			g.hn = 0
			h = g.hdr[:]
		}
		if s, bad := g.frame(h); bad {
			return s, true
		}
	}
	return 0, false
}

// frame accounts for one inbound frame header.
func (g *h2Guard) frame(h []byte) (Stat, bool) {
	length := uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
	typ, flags := h[3], h[4]
	g.remain = length
	switch typ {
	case frameHeaders, frameContinuation:
		if typ == frameHeaders {
			g.block = 0
			if id := binary.BigEndian.Uint32(h[5:9]) & 0x7fffffff; id > g.lastStream {
				g.lastStream = id
			}
		}
		g.block += int(length)
		if g.block > g.lim.maxHeaderBlock {
			return StatHeaderOverflow, true
		}
		if flags&flagEndHeaders != 0 {
			g.streams++
		}
		if open := flags&flagEndHeaders == 0; open != g.blockOpen {
			g.blockOpen = open
			g.inBlock.Store(open)
		}
		fallthrough
	case frameData:
		if typ != frameContinuation && flags&flagPadded != 0 && length > 0 {
			g.padPending, g.curLen, g.curFlags = true, length, flags
			return 0, false
		}
		return g.emptyFrame(length == 0 && (typ == frameContinuation || flags&flagEndStream == 0))
	case framePriority:
		g.priority++
		if g.priority > g.lim.maxPriority*(1+g.streams) {
			return StatPriorityFramesFlood, true
		}
	case frameWindowUpdate:
		g.windowUpd++
		if g.windowUpd > 1+2*(g.streams+g.lim.maxWindowUpdates*g.dataOut.Load()) {
			return StatWindowUpdateFramesFlood, true
		}
	case framePing, frameSettings:
		if flags&flagAck == 0 {
			g.asks++
			if acked := g.acksOut.Load(); g.asks > acked && g.asks-acked > g.lim.maxControl {
				return StatOutboundControlFlood, true
			}
		}
	}
	return 0, false
}

// emptyFrame counts consecutive empty frames.
func (g *h2Guard) emptyFrame(empty bool) (Stat, bool) {
	if !empty {
		g.empty = 0
		return 0, false
	}
	g.empty++
	if uint64(g.empty) > g.lim.maxEmpty {
		return StatEmptyFramesFlood, true
	}
	return 0, false
}

// flood ends the connection: GOAWAY(ENHANCE_YOUR_CALM) if the write side
// is between frames and free, then close. Reads fail from now on.
func (g *h2Guard) flood(s Stat) {
	g.err = &floodError{stat: s}
	g.m.count(s)
	g.m.log.Debug("http2 flood: closing the connection", "limit", s.String(), "source", g.RemoteAddr())
	if g.wmu.TryLock() {
		if !g.wclosed && g.wn == 0 && g.wremain == 0 {
			var f [17]byte
			f[2], f[3] = 8, 7 // length 8, GOAWAY
			binary.BigEndian.PutUint32(f[9:13], g.lastStream)
			binary.BigEndian.PutUint32(f[13:17], errCodeCalm)
			_ = g.Conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = g.Conn.Write(f[:])
		}
		g.wclosed = true
		g.wmu.Unlock()
	}
	_ = g.Conn.Close()
}

// errGuardClosed fails net/http's writes after the guard's GOAWAY.
var errGuardClosed = errors.New("http2 connection closed at a flood limit")

func (g *h2Guard) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.wclosed {
		return 0, errGuardClosed
	}
	n, err := g.Conn.Write(p)
	g.scanOut(p[:n])
	return n, err
}

// scanOut follows the frames written, counting DATA frames and ACKs.
// Called with wmu held.
func (g *h2Guard) scanOut(b []byte) {
	for len(b) > 0 {
		if g.wremain > 0 {
			if uint32(len(b)) <= g.wremain {
				g.wremain -= uint32(len(b))
				return
			}
			b = b[g.wremain:]
			g.wremain = 0
			continue
		}
		var h []byte
		if g.wn == 0 && len(b) >= 9 {
			h, b = b[:9], b[9:]
		} else {
			k := copy(g.whdr[g.wn:], b)
			g.wn += k
			b = b[k:]
			if g.wn < 9 {
				return
			}
			g.wn = 0
			h = g.whdr[:]
		}
		g.wremain = uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
		switch h[3] {
		case frameData:
			g.dataOut.Add(1)
		case framePing, frameSettings:
			if h[4]&flagAck != 0 {
				g.acksOut.Add(1)
			}
		case frameGoAway:
			// net/http closing the connection with an error while a
			// header block arrives: it refused the block (its header
			// list limit, or a string over it: PROTOCOL_ERROR,
			// COMPRESSION_ERROR). The code is read when the frame's
			// payload is in the same write, as net/http writes it.
			if len(b) >= 8 && g.inBlock.Load() {
				if code := binary.BigEndian.Uint32(b[4:8]); code != 0 && code != errCodeCalm {
					g.m.count(StatHeaderOverflow)
				}
			}
		}
	}
}
