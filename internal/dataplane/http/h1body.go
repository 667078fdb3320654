package http

import (
	"bytes"
	"errors"
	"io"
	nethttp "net/http"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// Chunked body states.
const (
	csSize    = iota // reading a chunk-size line
	csData           // chunk data: remain bytes
	csDataEnd        // the CRLF after chunk data
	csTrailer        // trailer lines up to an empty one
)

// errBodyTruncated is a request body that ended with the connection.
var errBodyTruncated = io.ErrUnexpectedEOF

// reqBody is an HTTP/1 request body read from the connection's buffer:
// Content-Length framed or chunked (with trailers). Reads may come from
// any goroutine (an upstream transport reads the body in its own); a
// mutex orders them with the connection's drain at the end of the
// request, after which reads fail. Framing errors are sticky, reported
// to the connection state, and end the connection.
type reqBody struct {
	c   *h1conn
	req *nethttp.Request

	mu      sync.Mutex
	chunked bool
	state   int
	remain  int64 // Content-Length bytes left, or the current chunk's
	eof     atomic.Bool
	closed  bool
	err     error
	// expect: send "100 Continue" before the first read.
	expect bool
	line   []byte // a chunk-size or trailer line split across reads
	tsize  int    // trailer bytes so far
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, nethttp.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

// Close marks the body closed; what is left of it is drained (or the
// connection closed) when the request ends.
func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

func (b *reqBody) readLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.expect {
		b.expect = false
		b.c.w.writeContinue()
	}
	if err := b.c.clearStaleDeadline(); err != nil {
		b.fail(err)
		return 0, err
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readFixed(p)
	}
	if err != nil && err != io.EOF {
		b.fail(err)
	}
	return n, err
}

// fail records a read error; a framing error is also the connection's.
func (b *reqBody) fail(err error) {
	b.err = err
	var pe *protocolError
	if errors.As(err, &pe) {
		b.c.cs.protoErr.Store(pe)
	}
}

func (b *reqBody) done() {
	b.eof.Store(true)
	b.c.bodyDone()
}

func (b *reqBody) readFixed(p []byte) (int, error) {
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.in.read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.done()
		return n, io.EOF
	}
	if err == io.EOF {
		err = errBodyTruncated
	}
	return n, err
}

// readChunked returns chunk data, going through size lines and, after
// the last chunk, the trailers.
func (b *reqBody) readChunked(p []byte) (int, error) {
	in := &b.c.in
	for {
		switch b.state {
		case csData:
			q := p
			if int64(len(q)) > b.remain {
				q = q[:b.remain]
			}
			n, err := in.read(q)
			b.remain -= int64(n)
			if b.remain == 0 {
				b.state = csDataEnd
			}
			if n > 0 {
				return n, nil
			}
			if err == io.EOF {
				err = errBodyTruncated
			}
			return 0, err
		case csDataEnd:
			for in.buffered() < 2 {
				if err := in.fillMore(); err != nil {
					return 0, truncated(err)
				}
			}
			if in.buf[in.r] != '\r' || in.buf[in.r+1] != '\n' {
				return 0, badRequest("chunk data not followed by CRLF")
			}
			in.r += 2
			b.state = csSize
		case csSize, csTrailer:
			line, err := b.readLine()
			if err != nil {
				return 0, err
			}
			if b.state == csSize {
				size, perr := parseChunkSize(line)
				if perr != nil {
					return 0, perr
				}
				if size == 0 {
					b.state = csTrailer
				} else {
					b.state, b.remain = csData, size
				}
				continue
			}
			if len(line) == 0 {
				b.line = nil
				b.done()
				return 0, io.EOF
			}
			if perr := b.trailerLine(line); perr != nil {
				return 0, perr
			}
		}
	}
}

func truncated(err error) error {
	if err == io.EOF {
		return errBodyTruncated
	}
	return err
}

// readLine returns the next line without its CRLF. A chunk-size line
// must end with CRLF (a bare LF is an error); trailer lines may end with
// a bare LF, as header lines do. The line is valid until the next read.
func (b *reqBody) readLine() ([]byte, error) {
	in := &b.c.in
	limit := maxChunkLine
	if b.state == csTrailer {
		limit = b.c.srv.maxHead
	}
	b.line = b.line[:0]
	for {
		buf := in.buf[in.r:in.w]
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line := buf[:i]
			in.r += i + 1
			if len(b.line) > 0 {
				b.line = append(b.line, line...)
				line = b.line
			}
			if b.state == csTrailer {
				b.tsize += len(line) + 1
				if b.tsize > limit {
					return nil, &protocolError{status: nethttp.StatusRequestHeaderFieldsTooLarge, reason: "trailers too large"}
				}
			} else if len(line) > limit {
				return nil, badRequest("chunk-size line too long")
			}
			if len(line) == 0 || line[len(line)-1] != '\r' {
				if b.state == csSize {
					return nil, badRequest("chunk-size line ends with bare LF")
				}
				return line, nil
			}
			return line[:len(line)-1], nil
		}
		b.line = append(b.line, buf...)
		in.r = in.w
		if len(b.line) > limit {
			if b.state == csSize {
				return nil, badRequest("chunk-size line too long")
			}
			return nil, &protocolError{status: nethttp.StatusRequestHeaderFieldsTooLarge, reason: "trailers too large"}
		}
		if err := in.fillMore(); err != nil {
			return nil, truncated(err)
		}
	}
}

// parseChunkSize parses a chunk-size line (h1wire.ParseChunkSize).
func parseChunkSize(line []byte) (int64, *protocolError) {
	n, ok := h1wire.ParseChunkSize(line)
	if !ok {
		return 0, badRequest("invalid chunk size")
	}
	return n, nil
}

// trailerLine adds one trailer field to the request's Trailer.
func (b *reqBody) trailerLine(line []byte) *protocolError {
	if line[0] == ' ' || line[0] == '\t' {
		return badRequest("obs-fold in trailers")
	}
	s := string(line)
	name, value, ok := strings.Cut(s, ":")
	if !ok || !httpguts.ValidHeaderFieldName(name) {
		return badRequest("malformed trailer line")
	}
	value = h1wire.TrimOWS(value)
	if !httpguts.ValidHeaderFieldValue(value) {
		return badRequest("invalid trailer value")
	}
	if b.req.Trailer == nil {
		b.req.Trailer = nethttp.Header{}
	}
	b.req.Trailer.Add(h1wire.CanonicalKey(name), value)
	return nil
}

// finish ends the body when the request is over: what the handler left
// unread is drained, up to maxPostHandlerDrain, and later reads fail. It
// reports whether the connection can serve another request.
func (b *reqBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.eof.Load() {
		return true
	}
	if b.err != nil || b.expect {
		// A broken body, or one the client waits for a 100 Continue to
		// send: what follows on the wire is not a request.
		return false
	}
	var scratch [4096]byte
	drained := 0
	for drained <= maxPostHandlerDrain {
		n, err := b.readLocked(scratch[:])
		drained += n
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// complete reports whether the body has been read to its end. It does
// not wait for a read in progress.
func (b *reqBody) complete() bool { return b.eof.Load() }
