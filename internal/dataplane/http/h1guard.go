package http

import (
	"bytes"
	"strings"
)

// protocolError is what the HTTP/1 guard returns from Read when a request
// breaks the framing rules. It is not a net.Error, so net/http answers it
// with "400 Bad Request" and closes the connection.
type protocolError struct{ reason string }

func (e *protocolError) Error() string { return "http/1 protocol error: " + e.reason }

// maxChunkLine is net/http's limit on a chunk-size line.
const maxChunkLine = 4096

// Guard states.
const (
	gsHead      = iota // reading a request head
	gsBody             // fixed-length body: remain bytes
	gsChunkLine        // chunk-size line
	gsChunkData        // chunk data: remain bytes
	gsChunkCR          // the CR after chunk data
	gsChunkLF          // the LF after chunk data
	gsTrailer          // trailer lines up to an empty one
)

// h1guard checks the framing of the HTTP/1 requests on a connection as the
// bytes arrive, before net/http's parser reads them, and stops the stream
// at the first request that net/http would accept but a proxy must not
// (request smuggling, SECURITY B2 and B3):
//
//   - Content-Length together with Transfer-Encoding (net/http drops the
//     Content-Length and goes on);
//   - Transfer-Encoding on an HTTP/1.0 request (net/http ignores it and
//     frames by Content-Length);
//   - obs-fold continuation lines (net/http joins them, a folded
//     Transfer-Encoding included);
//   - more than one Transfer-Encoding, or one other than "chunked";
//   - differing Content-Length values, or ones that are not decimal;
//   - malformed chunk-size lines, chunk data not followed by CRLF, and
//     obs-fold in trailers.
//
// It follows request boundaries the way net/http does (fixed bodies,
// chunked bodies with trailers), so it knows where each head starts. It
// steps aside for HTTP/2 (the connection preface), after an Upgrade or
// CONNECT request (the handler then either takes the connection over or
// closes it), and for a head larger than net/http accepts (net/http then
// answers 431 and closes). Everything else net/http checks itself (a
// missing or repeated Host, bad header names and values, oversized
// heads).
//
// The guard is owned by the connection's reader goroutine; it is not safe
// for concurrent use (neither are reads of a net.Conn).
type h1guard struct {
	state   int
	off     bool // stepped aside: pass everything through
	maxHead int
	head    []byte
	line    []byte
	remain  uint64
}

// scan inspects the bytes just read. It returns how many leading bytes of
// p may be handed to net/http and, on a violation, the error to return in
// place of the rest: the offending head (or chunk line) is withheld, so
// net/http never completes it.
func (g *h1guard) scan(p []byte) (int, *protocolError) {
	elem := 0 // where the current head or chunk line started in p
	for i := 0; i < len(p); {
		if g.off {
			return len(p), nil
		}
		switch g.state {
		case gsHead:
			c := p[i]
			if len(g.head) == 0 {
				if c == '\r' || c == '\n' {
					i++
					continue
				}
				elem = i
			}
			g.head = append(g.head, c)
			i++
			if len(g.head) > g.maxHead {
				g.stepAside()
				return len(p), nil
			}
			if c == '\n' && headDone(g.head) {
				if err := g.endHead(); err != nil {
					return elem, err
				}
			}
		case gsBody, gsChunkData:
			n := uint64(len(p) - i)
			if n > g.remain {
				n = g.remain
			}
			i += int(n)
			g.remain -= n
			if g.remain == 0 {
				if g.state == gsBody {
					g.state = gsHead
				} else {
					g.state = gsChunkCR
				}
			}
		case gsChunkCR, gsChunkLF:
			want := byte('\r')
			if g.state == gsChunkLF {
				want = '\n'
			}
			if p[i] != want {
				return i, &protocolError{"chunk data not followed by CRLF"}
			}
			i++
			if g.state == gsChunkCR {
				g.state = gsChunkLF
			} else {
				g.state = gsChunkLine
			}
		case gsChunkLine, gsTrailer:
			if len(g.line) == 0 {
				elem = i
			}
			c := p[i]
			g.line = append(g.line, c)
			i++
			if g.state == gsChunkLine && len(g.line) > maxChunkLine {
				return elem, &protocolError{"chunk-size line too long"}
			}
			if g.state == gsTrailer && len(g.line) > g.maxHead {
				return elem, &protocolError{"trailers too large"}
			}
			if c != '\n' {
				continue
			}
			var err *protocolError
			if g.state == gsChunkLine {
				err = g.endChunkLine()
			} else {
				err = g.endTrailerLine()
			}
			if err != nil {
				return elem, err
			}
		}
	}
	return len(p), nil
}

func (g *h1guard) stepAside() {
	g.off = true
	g.head, g.line = nil, nil
}

// headDone reports whether a head ends with an empty line.
func headDone(h []byte) bool {
	return bytes.HasSuffix(h, []byte("\n\n")) || bytes.HasSuffix(h, []byte("\n\r\n"))
}

// endHead checks a complete request head and sets the framing of what
// follows.
func (g *h1guard) endHead() *protocolError {
	err := g.checkHead(g.head)
	if cap(g.head) > 8<<10 {
		g.head = nil // do not keep a large head's buffer for the connection
	} else {
		g.head = g.head[:0]
	}
	return err
}

// checkHead does endHead's work on the head's bytes without copying them
// (per request, on every connection): the lines are walked in place and
// the Content-Length and Transfer-Encoding values compared as they come.
// head is not retained.
func (g *h1guard) checkHead(head []byte) *protocolError {
	rest := head
	reqLine, rest, _ := bytes.Cut(rest, []byte("\n"))
	reqLine = bytes.TrimSuffix(reqLine, []byte("\r"))
	method, _, _ := bytes.Cut(reqLine, []byte(" "))
	proto := reqLine[bytes.LastIndexByte(reqLine, ' ')+1:]
	if string(method) == "PRI" && string(proto) == "HTTP/2.0" {
		g.stepAside() // the HTTP/2 connection preface
		return nil
	}
	// The first Content-Length and Transfer-Encoding values, and how many
	// of each; whether later Content-Length values differ from the first.
	var cl0, te0 []byte
	ncl, nte := 0, 0
	clDiffer := false
	upgrade := false
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return &protocolError{"obs-fold header continuation"}
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return &protocolError{"malformed header line"}
		}
		value = bytes.Trim(value, " \t")
		switch {
		case equalFold(name, "Content-Length"):
			if ncl == 0 {
				cl0 = value
			} else if !bytes.Equal(value, cl0) {
				clDiffer = true
			}
			ncl++
		case equalFold(name, "Transfer-Encoding"):
			if nte == 0 {
				te0 = value
			}
			nte++
		case equalFold(name, "Upgrade"):
			if len(value) != 0 && !equalFold(value, "h2c") {
				upgrade = true
			}
		}
	}
	next, remain := gsHead, uint64(0)
	switch {
	case nte > 0:
		switch {
		case ncl > 0:
			return &protocolError{"Content-Length with Transfer-Encoding"}
		case string(proto) != "HTTP/1.1":
			return &protocolError{"Transfer-Encoding on " + string(proto)}
		case nte != 1 || !equalFold(te0, "chunked"):
			return &protocolError{"unsupported Transfer-Encoding"}
		}
		next = gsChunkLine
	case ncl > 0:
		n, ok := parseContentLength(cl0)
		if !ok {
			return &protocolError{"invalid Content-Length"}
		}
		if clDiffer {
			return &protocolError{"differing Content-Length values"}
		}
		if n > 0 {
			next, remain = gsBody, n
		}
	}
	if upgrade || string(method) == "CONNECT" {
		// What follows is the upgraded protocol, or nothing: the
		// handler takes the connection over or closes it.
		g.stepAside()
		return nil
	}
	g.state, g.remain = next, remain
	return nil
}

// equalFold is strings.EqualFold(string(b), s) without a heap copy
// (s is short; its conversion stays on the stack). It folds as
// strings.EqualFold does (Unicode simple folding), so the guard's
// decisions do not change.
func equalFold(b []byte, s string) bool {
	return bytes.EqualFold(b, []byte(s))
}

// endChunkLine parses a chunk-size line as net/http does: CRLF-terminated,
// trailing whitespace and the extension dropped, 1 to 16 hex digits.
func (g *h1guard) endChunkLine() *protocolError {
	line := g.line
	g.line = g.line[:0]
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return &protocolError{"chunk-size line ends with bare LF"}
	}
	line = bytes.TrimRight(line[:len(line)-2], " \t")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 || len(line) > 16 {
		return &protocolError{"invalid chunk size"}
	}
	var n uint64
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return &protocolError{"invalid chunk size"}
		}
		n = n<<4 | uint64(d)
	}
	if n == 0 {
		g.state = gsTrailer
		return nil
	}
	g.state, g.remain = gsChunkData, n
	return nil
}

// endTrailerLine ends the body at an empty line.
func (g *h1guard) endTrailerLine() *protocolError {
	line := strings.TrimSuffix(strings.TrimSuffix(string(g.line), "\n"), "\r")
	g.line = g.line[:0]
	switch {
	case line == "":
		g.state = gsHead
	case line[0] == ' ' || line[0] == '\t':
		return &protocolError{"obs-fold in trailers"}
	}
	return nil
}

// parseContentLength accepts 1 to 19 decimal digits.
func parseContentLength(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + uint64(v[i]-'0')
	}
	return n, true
}
