package listener

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// helloConn records what a TLS client writes and fails its first read,
// which ends the handshake right after the ClientHello.
type helloConn struct{ out bytes.Buffer }

func (c *helloConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *helloConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }

// goClientHello returns the ClientHello record(s) crypto/tls sends.
func goClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c := &helloConn{}
	if err := tls.Client(c, cfg).Handshake(); err == nil {
		t.Fatal("handshake unexpectedly succeeded")
	}
	if c.out.Len() == 0 {
		t.Fatal("no ClientHello written")
	}
	return c.out.Bytes()
}

// refragment splits the handshake messages of single-record b into
// records of at most size bytes.
func refragment(b []byte, size int) []byte {
	body := b[recordHeaderLen:]
	var out []byte
	for len(body) > 0 {
		n := min(size, len(body))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, body[:n]...)
		body = body[n:]
	}
	return out
}

// ext is a raw extension for handmade ClientHellos.
type ext struct {
	typ  uint16
	data []byte
}

// handHello builds a one-record ClientHello with the given extensions
// (nil: no extensions block at all) and trailing bytes in the body.
func handHello(exts []ext, trailing []byte) []byte {
	var body []byte
	body = append(body, 3, 3)                // legacy_version
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session_id
	body = append(body, 0, 2, 0x13, 0x01)    // cipher_suites
	body = append(body, 1, 0)                // compression_methods
	if exts != nil {
		var eb []byte
		for _, e := range exts {
			eb = binary.BigEndian.AppendUint16(eb, e.typ)
			eb = binary.BigEndian.AppendUint16(eb, uint16(len(e.data)))
			eb = append(eb, e.data...)
		}
		body = binary.BigEndian.AppendUint16(body, uint16(len(eb)))
		body = append(body, eb...)
	}
	body = append(body, trailing...)
	msg := []byte{typeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	msg = append(msg, body...)
	rec := []byte{recordTypeHandshake, 3, 1, byte(len(msg) >> 8), byte(len(msg))}
	return append(rec, msg...)
}

func sniExt(names ...string) ext {
	var list []byte
	for _, n := range names {
		list = append(list, 0)
		list = binary.BigEndian.AppendUint16(list, uint16(len(n)))
		list = append(list, n...)
	}
	return ext{extServerName, append(binary.BigEndian.AppendUint16(nil, uint16(len(list))), list...)}
}

func alpnExt(protos ...string) ext {
	var list []byte
	for _, p := range protos {
		list = append(list, byte(len(p)))
		list = append(list, p...)
	}
	return ext{extALPN, append(binary.BigEndian.AppendUint16(nil, uint16(len(list))), list...)}
}

func TestParseClientHelloFromCryptoTLS(t *testing.T) {
	tests := []struct {
		name     string
		cfg      *tls.Config
		wantSNI  string
		wantALPN []string
	}{
		{"TLS 1.3 with SNI and ALPN", &tls.Config{ServerName: "api.example.com", NextProtos: []string{"h2", "http/1.1"}}, "api.example.com", []string{"h2", "http/1.1"}},
		{"TLS 1.2 only", &tls.Config{ServerName: "db.example.com", MaxVersion: tls.VersionTLS12}, "db.example.com", nil},
		{"no SNI", &tls.Config{InsecureSkipVerify: true}, "", nil},
		{"upper-case SNI is lower-cased", &tls.Config{ServerName: "API.Example.COM"}, "api.example.com", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := goClientHello(t, tc.cfg)
			for _, size := range []int{0, 1, 7, 100} {
				in := b
				if size > 0 {
					in = refragment(b, size)
				}
				h, st, _ := parseClientHello(in, maxClientHelloSize)
				if st != helloTLS || h.sni != tc.wantSNI || !slices.Equal(h.alpn, tc.wantALPN) {
					t.Errorf("fragments of %d: got %v sni=%q alpn=%q, want TLS sni=%q alpn=%q", size, st, h.sni, h.alpn, tc.wantSNI, tc.wantALPN)
				}
				// Every proper prefix asks for more, and for a length
				// within the input.
				for i := range len(in) {
					_, st, need := parseClientHello(in[:i], maxClientHelloSize)
					if st != helloNeedMore || need <= i || need > len(in) {
						t.Fatalf("fragments of %d, prefix %d: got %v need %d, want need-more in (%d, %d]", size, i, st, need, i, len(in))
					}
				}
				// Bytes after the ClientHello change nothing.
				if h2, st2, _ := parseClientHello(append(slices.Clone(in), "trailing application data"...), maxClientHelloSize); st2 != helloTLS || h2.sni != h.sni {
					t.Errorf("fragments of %d: trailing bytes changed the result: %v %q", size, st2, h2.sni)
				}
			}
		})
	}
}

func TestParseClientHelloRejects(t *testing.T) {
	valid := handHello([]ext{sniExt("a.example.com"), alpnExt("h2")}, nil)
	if h, st, _ := parseClientHello(valid, maxClientHelloSize); st != helloTLS || h.sni != "a.example.com" || !slices.Equal(h.alpn, []string{"h2"}) {
		t.Fatalf("handmade hello: %v %+v", st, h)
	}
	mutate := func(f func(b []byte)) []byte {
		b := slices.Clone(valid)
		f(b)
		return b
	}
	tests := []struct {
		name     string
		in       []byte
		max      int
		want     helloStatus
		wantALPN []string
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\n"), maxClientHelloSize, helloNotTLS, nil},
		{"one byte of plain text", []byte("G"), maxClientHelloSize, helloNotTLS, nil},
		{"SSLv2-style major version", []byte{22, 2, 0, 0, 10}, maxClientHelloSize, helloNotTLS, nil},
		{"alert record", []byte{21, 3, 3, 0, 2, 2, 40}, maxClientHelloSize, helloNotTLS, nil},
		{"empty record", []byte{22, 3, 1, 0, 0}, maxClientHelloSize, helloNotTLS, nil},
		{"record over 2^14", []byte{22, 3, 1, 0x40, 0x01}, 1 << 20, helloNotTLS, nil},
		{"ServerHello", mutate(func(b []byte) { b[5] = 2 }), maxClientHelloSize, helloNotTLS, nil},
		{"session id over 32", handHelloSessionID(33), maxClientHelloSize, helloNotTLS, nil},
		{"no extensions block", handHello(nil, nil), maxClientHelloSize, helloTLS, nil},
		{"trailing bytes after extensions", handHello([]ext{sniExt("a.example.com")}, []byte{0}), maxClientHelloSize, helloNotTLS, nil},
		{"two server names", handHello([]ext{sniExt("a.example.com", "b.example.com")}, nil), maxClientHelloSize, helloNotTLS, nil},
		{"empty server name", handHello([]ext{sniExt("")}, nil), maxClientHelloSize, helloNotTLS, nil},
		{"NUL in server name", handHello([]ext{sniExt("a\x00.example.com")}, nil), maxClientHelloSize, helloNotTLS, nil},
		{"server name over 255", handHello([]ext{sniExt(strings.Repeat("a", 256))}, nil), maxClientHelloSize, helloNotTLS, nil},
		{"duplicate extension", handHello([]ext{alpnExt("h2"), alpnExt("h2")}, nil), maxClientHelloSize, helloNotTLS, nil},
		{"malformed ALPN is ignored", handHello([]ext{sniExt("a.example.com"), {extALPN, []byte{0, 3, 0, 1, 'x'}}}, nil), maxClientHelloSize, helloTLS, nil},
		{"too large for max", valid, len(valid) - 1, helloTooLarge, nil},
		{"header alone beyond max", valid[:3], 4, helloTooLarge, nil},
		{"declared handshake beyond max", mutate(func(b []byte) { b[6] = 1 }), maxClientHelloSize, helloTooLarge, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, st, _ := parseClientHello(tc.in, tc.max)
			if st != tc.want {
				t.Fatalf("got %v, want %v", st, tc.want)
			}
			if st == helloTLS && !slices.Equal(h.alpn, tc.wantALPN) {
				t.Errorf("alpn %q, want %q", h.alpn, tc.wantALPN)
			}
		})
	}
}

// handHelloSessionID is a ClientHello with an n-byte session id.
func handHelloSessionID(n int) []byte {
	body := append([]byte{3, 3}, make([]byte, 32)...)
	body = append(body, byte(n))
	body = append(body, make([]byte, n)...)
	body = append(body, 0, 2, 0x13, 0x01, 1, 0)
	msg := append([]byte{typeClientHello, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{recordTypeHandshake, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(goClientHello(f, &tls.Config{ServerName: "api.example.com", NextProtos: []string{"h2", "http/1.1"}}), false)
	f.Add(refragment(goClientHello(f, &tls.Config{ServerName: "x.example.com"}), 3), false)
	f.Add(handHello([]ext{sniExt("a.example.com"), alpnExt("h2")}, nil), true)
	f.Add([]byte("GET / HTTP/1.1\r\n"), false)
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, small bool) {
		max := maxClientHelloSize
		if small {
			max = 64
		}
		h, st, need := parseClientHello(b, max)
		switch st {
		case helloNeedMore:
			if need <= len(b) || need > max {
				t.Fatalf("need %d with %d bytes, max %d", need, len(b), max)
			}
		case helloTLS:
			if len(h.sni) > maxHostNameLen || h.sni != strings.ToLower(h.sni) || strings.IndexByte(h.sni, 0) >= 0 {
				t.Fatalf("bad SNI %q", h.sni)
			}
			for _, p := range h.alpn {
				if p == "" {
					t.Fatal("empty ALPN name")
				}
			}
			// A complete ClientHello stays one whatever follows it.
			h2, st2, _ := parseClientHello(append(slices.Clone(b), 0xff, 0), max)
			if st2 != helloTLS || h2.sni != h.sni || !slices.Equal(h2.alpn, h.alpn) {
				t.Fatalf("appending bytes changed %v/%q to %v/%q", st, h.sni, st2, h2.sni)
			}
		case helloNotTLS, helloTooLarge:
			// Final: more bytes do not change the verdict.
			if _, st2, _ := parseClientHello(append(slices.Clone(b), 0), max); st2 != st {
				t.Fatalf("appending a byte changed %v to %v", st, st2)
			}
		}
	})
}
