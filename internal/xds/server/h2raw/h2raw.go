package h2raw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Conn is one HTTP/2 connection driven frame by frame. It is not safe for
// concurrent use.
type Conn struct {
	net.Conn
	Framer *http2.Framer
	hbuf   bytes.Buffer
	enc    *hpack.Encoder
}

// Handshake writes the client preface and an empty SETTINGS frame on c.
func Handshake(c net.Conn) (*Conn, error) {
	hc := &Conn{Conn: c, Framer: http2.NewFramer(c, c)}
	hc.enc = hpack.NewEncoder(&hc.hbuf)
	// Frames up to 16 MiB are read (and reported) rather than refused.
	hc.Framer.SetMaxReadFrameSize(16 << 20)
	hc.Framer.ReadMetaHeaders = hpack.NewDecoder(64<<10, nil)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return nil, fmt.Errorf("writing the client preface: %w", err)
	}
	if err := hc.Framer.WriteSettings(); err != nil {
		return nil, fmt.Errorf("writing SETTINGS: %w", err)
	}
	return hc, nil
}

// OpenGRPC sends the HEADERS of a gRPC call to method
// ("/package.Service/Method") on stream id, without ending the stream.
func (c *Conn) OpenGRPC(id uint32, authority, method string) error {
	c.hbuf.Reset()
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", authority}, {":path", method},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return err
		}
	}
	return c.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true})
}

// GRPCPrefix is the 5-byte gRPC message prefix claiming a message of n
// bytes (uncompressed).
func GRPCPrefix(n uint32) []byte {
	b := make([]byte, 5)
	binary.BigEndian.PutUint32(b[1:], n)
	return b
}

// FrameHeader is a raw 9-byte frame header of the given length, type and
// stream, for frames whose body the test then truncates or omits.
func FrameHeader(length uint32, typ http2.FrameType, flags http2.Flags, stream uint32) []byte {
	return []byte{byte(length >> 16), byte(length >> 8), byte(length), byte(typ), byte(flags),
		byte(stream >> 24 & 0x7f), byte(stream >> 16), byte(stream >> 8), byte(stream)}
}

// ErrClosed is returned by Wait when the server closed the connection
// before a matching frame arrived.
var ErrClosed = errors.New("connection closed by the server")

// Wait reads frames until match returns true for one (returned), the
// connection ends (ErrClosed) or timeout passes (a timeout error). Server
// SETTINGS are ACKed on the way; a nil match waits for the end of the
// connection.
func (c *Conn) Wait(timeout time.Duration, match func(http2.Frame) bool) (http2.Frame, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	defer c.SetReadDeadline(time.Time{})
	for {
		f, err := c.Framer.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, fmt.Errorf("no matching frame within %v: %w", timeout, err)
			}
			if ce, ok := err.(http2.ConnectionError); ok {
				return nil, fmt.Errorf("reading a frame: %v", ce)
			}
			return nil, fmt.Errorf("%w (%v)", ErrClosed, err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			if err := c.Framer.WriteSettingsAck(); err != nil {
				return nil, fmt.Errorf("%w (writing SETTINGS ACK: %v)", ErrClosed, err)
			}
		}
		if match != nil && match(f) {
			return f, nil
		}
	}
}

// GRPCStatus returns the grpc-status of a HEADERS frame carrying trailers
// (or a trailers-only response), and whether it has one.
func GRPCStatus(f http2.Frame) (string, bool) {
	m, ok := f.(*http2.MetaHeadersFrame)
	if !ok {
		return "", false
	}
	for _, h := range m.Fields {
		if h.Name == "grpc-status" {
			return h.Value, true
		}
	}
	return "", false
}

// Closed reads from c until the peer closes it; it returns nil then, and
// an error if data keeps coming or nothing happens within timeout.
func Closed(c net.Conn, timeout time.Duration) error {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, c)
	if err == nil {
		return nil // EOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection still open after %v (%d bytes read)", timeout, n)
	}
	return nil // reset: closed too
}
