package listener

// HTTP detection, Envoy's http_inspector: the HTTP/2 connection preface
// means "h2c"; an HTTP/1.x request line means "http/1.1" (version 1.1) or
// "http/1.0" (any other version the line carries); anything else is not
// HTTP and leaves the application protocols unset.

const (
	// http2Preface is the HTTP/2 client connection preface (RFC 9113 3.4).
	http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// maxHTTPInspect is Envoy's http_inspector MAX_INSPECT_SIZE: a request
	// line still incomplete after this many bytes closes the connection.
	maxHTTPInspect = 8 * 1024

	alpnHTTP11 = "http/1.1"
	alpnHTTP10 = "http/1.0"
	alpnH2C    = "h2c"
)

// sniffStatus is the outcome of looking at the bytes read so far.
type sniffStatus int

const (
	sniffNeedMore sniffStatus = iota // a prefix of the preface or of a request line
	sniffHTTP                        // detected; the protocol is returned
	sniffNotHTTP                     // not HTTP
)

// sniffHTTPProtocol classifies the first bytes of a cleartext connection.
// It looks at the first line only and fails as soon as a byte cannot
// belong to a request line, so non-HTTP protocols are told apart without
// waiting for more data. It never panics, whatever b holds.
func sniffHTTPProtocol(b []byte) (string, sniffStatus) {
	if len(b) == 0 {
		return "", sniffNeedMore
	}
	n := min(len(b), len(http2Preface))
	if string(b[:n]) == http2Preface[:n] {
		if n < len(http2Preface) {
			return "", sniffNeedMore
		}
		return alpnH2C, sniffHTTP
	}
	return sniffRequestLine(b)
}

// sniffRequestLine checks "method SP request-target SP HTTP/d.d CRLF"
// (RFC 9112 3; a bare LF is accepted as the line end, as parsers
// commonly do).
func sniffRequestLine(b []byte) (string, sniffStatus) {
	i := 0
	// method = token
	for ; i < len(b) && b[i] != ' '; i++ {
		if !isTokenChar(b[i]) {
			return "", sniffNotHTTP
		}
	}
	if i == 0 {
		return "", sniffNotHTTP
	}
	if i == len(b) {
		return "", sniffNeedMore
	}
	i++ // SP
	start := i
	for ; i < len(b) && b[i] != ' '; i++ {
		if b[i] < 0x21 || b[i] == 0x7f {
			return "", sniffNotHTTP
		}
	}
	if i == len(b) {
		return "", sniffNeedMore
	}
	if i == start {
		return "", sniffNotHTTP
	}
	i++ // SP
	const version = "HTTP/d.d"
	var major, minor byte
	for j := 0; j < len(version); j, i = j+1, i+1 {
		if i == len(b) {
			return "", sniffNeedMore
		}
		c := b[i]
		switch {
		case version[j] == 'd' && c >= '0' && c <= '9':
			if j == 5 {
				major = c
			} else {
				minor = c
			}
		case version[j] != 'd' && c == version[j]:
		default:
			return "", sniffNotHTTP
		}
	}
	if i == len(b) {
		return "", sniffNeedMore
	}
	if b[i] == '\r' {
		i++
		if i == len(b) {
			return "", sniffNeedMore
		}
	}
	if b[i] != '\n' {
		return "", sniffNotHTTP
	}
	if major == '1' && minor == '1' {
		return alpnHTTP11, sniffHTTP
	}
	return alpnHTTP10, sniffHTTP
}

// isTokenChar reports whether c is a tchar (RFC 9110 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
