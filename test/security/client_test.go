//go:build linux

package security

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Both clients write requests byte for byte as the case gives them (no
// client-side cleaning of paths or headers), so what reaches the proxy is
// exactly the attack.

// result is what the client got for one request.
type result struct {
	status int    // 0: no response
	body   string // the response body
	how    string // "response", "RST_STREAM <code>", "connection closed: …"
	closed bool   // HTTP/1: the connection was closed after the response
}

func (r result) String() string {
	b := r.body
	if len(b) > 120 {
		b = b[:120] + "…"
	}
	return fmt.Sprintf("%d (%s) %q", r.status, r.how, b)
}

const ioTimeout = 10 * time.Second

// dial connects to the sidecar's inbound listener from src, the address
// that selects the backend (see mesh.originalDst).
func dial(t testing.TB, src, to string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: ioTimeout}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatalf("dialling the sidecar from %s: %v", src, err)
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return c
}

// h1 sends raw HTTP/1 bytes on a new connection and reads one response.
func h1(t testing.TB, src, to, raw string) result {
	t.Helper()
	return h1On(dial(t, src, to), raw)
}

// h1On sends raw on c, reads one response and closes c.
func h1On(c net.Conn, raw string) result {
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		return result{how: "write: " + err.Error()}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return result{how: "connection closed: " + err.Error(), closed: true}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := result{status: resp.StatusCode, body: string(body), how: "response"}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.ReadByte()
	var ne net.Error
	r.closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return r
}

// request is one HTTP request of a case, for either protocol.
type request struct {
	method, authority, path string
	headers                 [][2]string
}

// h1Raw renders r as an HTTP/1.1 request (Host from authority).
func (r request) h1Raw() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.method, r.path, r.authority)
	for _, h := range r.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// h2 sends r over prior-knowledge HTTP/2 (h2c) as the only stream of a
// new connection, HPACK-encoding the fields as given, and reads the
// stream's outcome.
func h2(t testing.TB, src, to string, r request) result {
	t.Helper()
	c := dial(t, src, to)
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	fields := [][2]string{{":method", r.method}, {":scheme", "http"}, {":authority", r.authority}, {":path", r.path}}
	fields = append(fields, r.headers...)
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: buf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil)
	var out result
	var body strings.Builder
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			out.how = "connection closed: " + err.Error()
			out.body = body.String()
			return out
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				out.how = "RST_STREAM " + f.ErrCode.String()
				out.body = body.String()
				return out
			}
		case *http2.GoAwayFrame:
			if out.status == 0 {
				out.how = "GOAWAY " + f.ErrCode.String()
				return out
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			hfs, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				out.how = err.Error()
				return out
			}
			for _, hf := range hfs {
				if hf.Name == ":status" {
					fmt.Sscan(hf.Value, &out.status)
					out.how = "response"
				}
			}
			if f.StreamEnded() {
				out.body = body.String()
				return out
			}
		case *http2.DataFrame:
			if f.StreamID != 1 {
				continue
			}
			body.Write(f.Data())
			if n := len(f.Data()); n > 0 {
				_ = fr.WriteWindowUpdate(0, uint32(n))
				_ = fr.WriteWindowUpdate(1, uint32(n))
			}
			if f.StreamEnded() {
				out.body = body.String()
				return out
			}
		}
	}
}
