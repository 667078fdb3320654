package listener

import "strings"

// TLS ClientHello inspection, the part of Envoy's tls_inspector that
// BoringSSL does for it: find the ClientHello in the first record(s) of a
// connection and read its server_name and ALPN extensions, without
// consuming anything (the caller replays the bytes).

const (
	// maxClientHelloSize is Envoy's TLS_MAX_CLIENT_HELLO: the default and
	// largest max_client_hello_size, in bytes read from the socket.
	maxClientHelloSize = 16 * 1024

	recordHeaderLen     = 5
	recordTypeHandshake = 22
	maxPlaintextRecord  = 16 * 1024 // TLSPlaintext.length limit (2^14)
	handshakeHeaderLen  = 4
	typeClientHello     = 1
	extServerName       = 0
	extALPN             = 16
	maxHostNameLen      = 255 // TLSEXT_MAXLEN_host_name
)

// helloStatus is the outcome of looking at the bytes read so far.
type helloStatus int

const (
	// helloNeedMore: the bytes are a prefix of a ClientHello; read until
	// the returned total length is buffered.
	helloNeedMore helloStatus = iota
	// helloNotTLS: not a (well-formed) ClientHello. Envoy treats the
	// connection as plain text.
	helloNotTLS
	// helloTLS: a complete, well-formed ClientHello.
	helloTLS
	// helloTooLarge: a ClientHello that needs more bytes than allowed.
	// Envoy closes the connection.
	helloTooLarge
)

// clientHello is what the inspector takes from a ClientHello.
type clientHello struct {
	sni  string   // lower case; "" if absent
	alpn []string // nil if absent or malformed
}

// parseClientHello inspects the first bytes of a connection. With
// helloNeedMore, need is the total number of bytes to buffer before the
// next call can tell more (always more than len(b)); max bounds the bytes the
// ClientHello's records may span. It never reads beyond b and never
// panics, whatever b holds.
func parseClientHello(b []byte, max int) (h clientHello, st helloStatus, need int) {
	var msg []byte // the handshake message, reassembled from records
	owned := false // msg is a copy (else it aliases b and must not grow)
	off := 0
	for {
		if len(b) < off+recordHeaderLen {
			// Decide as early as the bytes allow: plain text fails here
			// on its first byte.
			rest := b[off:]
			if len(rest) >= 1 && rest[0] != recordTypeHandshake {
				return h, helloNotTLS, 0
			}
			if len(rest) >= 2 && rest[1] != 3 {
				return h, helloNotTLS, 0
			}
			if off+recordHeaderLen > max {
				return h, helloTooLarge, 0
			}
			if len(rest) < 2 {
				// The next byte may already decide.
				return h, helloNeedMore, off + len(rest) + 1
			}
			return h, helloNeedMore, off + recordHeaderLen
		}
		hdr := b[off : off+recordHeaderLen]
		if hdr[0] != recordTypeHandshake || hdr[1] != 3 {
			return h, helloNotTLS, 0
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > maxPlaintextRecord {
			return h, helloNotTLS, 0
		}
		end := off + recordHeaderLen + n
		if end > max {
			return h, helloTooLarge, 0
		}
		if len(b) < end {
			return h, helloNeedMore, end
		}
		frag := b[off+recordHeaderLen : end]
		switch {
		case msg == nil:
			msg = frag // no copy for the usual single record
		case !owned:
			msg = append(append(make([]byte, 0, 2*(len(msg)+len(frag))), msg...), frag...)
			owned = true
		default:
			msg = append(msg, frag...)
		}
		off = end
		if len(msg) < handshakeHeaderLen {
			continue
		}
		if msg[0] != typeClientHello {
			return h, helloNotTLS, 0
		}
		bodyLen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if off+handshakeHeaderLen+bodyLen-len(msg) > max {
			// Even with no more record headers it cannot fit.
			return h, helloTooLarge, 0
		}
		if len(msg) < handshakeHeaderLen+bodyLen {
			continue
		}
		h, ok := parseHelloBody(msg[handshakeHeaderLen : handshakeHeaderLen+bodyLen])
		if !ok {
			return clientHello{}, helloNotTLS, 0
		}
		return h, helloTLS, 0
	}
}

// parseHelloBody parses a ClientHello body (RFC 8446 4.1.2, RFC 5246
// 7.4.1.2) as strictly as BoringSSL: every length must be consistent, no
// trailing bytes, no duplicate extensions, and a server_name extension
// must hold exactly one non-empty host_name without NUL bytes. A malformed
// ALPN extension is ignored, as Envoy leaves it to the TLS stack.
func parseHelloBody(body []byte) (clientHello, bool) {
	var h clientHello
	r := byteReader(body)
	var random, sessionID, suites, compression []byte
	if !r.skip(2) || // legacy_version
		!r.bytes(32, &random) ||
		!r.vec8(&sessionID) || len(sessionID) > 32 ||
		!r.vec16(&suites) || len(suites) < 2 || len(suites)%2 != 0 ||
		!r.vec8(&compression) || len(compression) < 1 {
		return h, false
	}
	if len(r) == 0 {
		return h, true // no extensions
	}
	var exts []byte
	if !r.vec16(&exts) || len(r) != 0 {
		return h, false
	}
	er := byteReader(exts)
	seen := make(map[uint16]struct{}, 16)
	for len(er) > 0 {
		var typ uint16
		var data []byte
		if !er.u16(&typ) || !er.vec16(&data) {
			return h, false
		}
		if _, dup := seen[typ]; dup {
			return h, false
		}
		seen[typ] = struct{}{}
		switch typ {
		case extServerName:
			name, ok := parseServerName(data)
			if !ok {
				return h, false
			}
			h.sni = name
		case extALPN:
			h.alpn = parseALPN(data)
		}
	}
	return h, true
}

func parseServerName(data []byte) (string, bool) {
	r := byteReader(data)
	var list, name []byte
	var typ uint8
	if !r.vec16(&list) || len(r) != 0 {
		return "", false
	}
	lr := byteReader(list)
	if !lr.u8(&typ) || !lr.vec16(&name) || len(lr) != 0 {
		return "", false
	}
	if typ != 0 || len(name) == 0 || len(name) > maxHostNameLen {
		return "", false
	}
	for _, c := range name {
		if c == 0 {
			return "", false
		}
	}
	return strings.ToLower(string(name)), true
}

// parseALPN returns the protocol names, or nil when the extension is
// malformed (an empty name included).
func parseALPN(data []byte) []string {
	r := byteReader(data)
	var list []byte
	if !r.vec16(&list) || len(r) != 0 || len(list) < 2 {
		return nil
	}
	lr := byteReader(list)
	var out []string
	for len(lr) > 0 {
		var name []byte
		if !lr.vec8(&name) || len(name) == 0 {
			return nil
		}
		out = append(out, string(name))
	}
	return out
}

// byteReader consumes big-endian fields from a byte slice; every method
// reports false, consuming nothing useful, when too few bytes remain.
type byteReader []byte

func (r *byteReader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (r *byteReader) bytes(n int, out *[]byte) bool {
	if n < 0 || len(*r) < n {
		return false
	}
	*out = (*r)[:n]
	*r = (*r)[n:]
	return true
}

func (r *byteReader) u8(out *uint8) bool {
	if len(*r) < 1 {
		return false
	}
	*out = (*r)[0]
	*r = (*r)[1:]
	return true
}

func (r *byteReader) u16(out *uint16) bool {
	if len(*r) < 2 {
		return false
	}
	*out = uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return true
}

func (r *byteReader) vec8(out *[]byte) bool {
	var n uint8
	return r.u8(&n) && r.bytes(int(n), out)
}

func (r *byteReader) vec16(out *[]byte) bool {
	var n uint16
	return r.u16(&n) && r.bytes(int(n), out)
}
