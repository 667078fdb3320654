package http

import (
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// pathAction is what path normalisation decided.
type pathAction uint8

const (
	pathForward  pathAction = iota // route and forward the normalised path
	pathReject                     // 400
	pathRedirect                   // 307 to the normalised path (UNESCAPE_AND_REDIRECT)
)

// normalizer is the connection manager's path handling, applied to every
// request before routing; the result is also the path sent upstream
// (SECURITY.md A1–A7). Steps, as Envoy's
// ConnectionManagerUtility::maybeNormalizePath:
//
//  1. the fragment is dropped (A5);
//  2. control characters anywhere, and %00, %0A, %0D in the path, are
//     rejected, whatever the settings (A7);
//  3. path_with_escaped_slashes_action: %2F and %5C (any case) are kept,
//     rejected, or unescaped to '/' and '\' (then forwarded, or
//     redirected to);
//  4. normalize_path: RFC 3986 normalisation as Envoy's canonicalPath
//     (Chromium's path canonicaliser): unreserved characters decoded
//     once (%61 → a; %2E counts as a dot, so %2e%2e is a dot segment, A3;
//     %252e stays, A4), '\' taken as '/', dot segments removed (never
//     above the root), characters not allowed in a path escaped, escapes
//     of other characters kept as sent, an escaped NUL rejected;
//  5. merge_slashes: runs of '/' collapsed (after 4, as Envoy, A1).
//
// The query is never normalised and never used for path matching (A6).
type normalizer struct {
	normalize      bool
	mergeSlashes   bool
	escapedSlashes hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
}

// apply normalises an origin-form request target ("/path?query#frag").
func (n *normalizer) apply(target string) (string, pathAction) {
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	path, query, hasQuery := strings.Cut(target, "?")
	orig := path
	if path == "" || path[0] != '/' {
		return "", pathReject
	}
	if hasControl(path) || hasControl(query) || hasEncodedControl(path) {
		return "", pathReject
	}
	action := pathForward
	switch n.escapedSlashes {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
	default:
		unescaped, found := unescapeSlashes(path)
		if found {
			switch n.escapedSlashes {
			case hcmv3.HttpConnectionManager_REJECT_REQUEST:
				return "", pathReject
			case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
				action = pathRedirect
			}
			path = unescaped
		}
	}
	if n.normalize {
		var ok bool
		if path, ok = canonicalPath(path); !ok {
			return "", pathReject
		}
	}
	if n.mergeSlashes {
		path = mergeSlashes(path)
	}
	if path == orig {
		return target, action // unchanged: no copy
	}
	if hasQuery {
		path += "?" + query
	}
	return path, action
}

// hasControl reports ASCII control characters (NUL, CR, LF, ... and DEL).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// hasEncodedControl reports %00, %0A or %0D (any case).
func hasEncodedControl(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && s[i+1] == '0' {
			switch s[i+2] {
			case '0', 'a', 'A', 'd', 'D':
				return true
			}
		}
	}
	return false
}

// unescapeSlashes turns %2F and %5C (any case) into '/' and '\', as
// Envoy's PathUtil::unescapeSlashes.
func unescapeSlashes(p string) (string, bool) {
	if !strings.Contains(p, "%") {
		return p, false
	}
	var b strings.Builder
	found := false
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			switch {
			case p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F'):
				if !found {
					b.WriteString(p[:i])
					found = true
				}
				b.WriteByte('/')
				i += 2
				continue
			case p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C'):
				if !found {
					b.WriteString(p[:i])
					found = true
				}
				b.WriteByte('\\')
				i += 2
				continue
			}
		}
		if found {
			b.WriteByte(p[i])
		}
	}
	if !found {
		return p, false
	}
	return b.String(), true
}

// mergeSlashes collapses runs of '/'.
func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// Character classes of the path canonicaliser.
const (
	pcPass     = 0
	pcSpecial  = 1
	pcEscape   = 2 | pcSpecial
	pcUnescape = 4
	pcInvalid  = 8 | pcSpecial
)

// pathChars classifies every byte for canonicalPath (immutable).
var pathChars = func() (t [256]byte) {
	for c := 0; c < 256; c++ {
		switch {
		case c == 0:
			t[c] = pcInvalid
		case c < 0x20 || c >= 0x7f:
			t[c] = pcEscape
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '~':
			t[c] = pcUnescape
		case c == '.', c == '\\':
			t[c] = pcSpecial
		case strings.IndexByte(" \"#%<>?^`{|}", byte(c)) >= 0:
			t[c] = pcEscape
		default:
			t[c] = pcPass
		}
	}
	return t
}()

// canonicalPath normalises a path as Envoy's PathUtil::canonicalPath
// (Chromium's CanonicalizePath, which Envoy vendors). ok is false when
// the path holds a NUL, raw or escaped.
func canonicalPath(in string) (string, bool) {
	if isCanonical(in) {
		return in, true
	}
	return rewritePath(in)
}

// rewritePath is canonicalPath building a new path.
func rewritePath(in string) (string, bool) {
	out := make([]byte, 0, len(in)+8)
	if in == "" || !isURLSlash(in[0]) {
		out = append(out, '/')
	}
	const begin = 0
	lastInvalidPercent := -1 << 30
	ok := true
	for i := 0; i < len(in); i++ {
		c := in[i]
		flags := pathChars[c]
		if flags&pcSpecial == 0 {
			out = append(out, c)
			continue
		}
		if dot := isDot(in, i); dot > 0 {
			if len(out) > begin && out[len(out)-1] == '/' {
				kind, consumed := classifyAfterDot(in, i+dot)
				switch kind {
				case notADirectory:
					out = append(out, '.')
					i += dot - 1
				case directoryCurrent:
					i += dot + consumed - 1
				case directoryUp:
					out = backUpToPreviousSlash(out, begin)
					i += dot + consumed - 1
				}
			} else {
				out = append(out, '.')
				i += dot - 1
			}
			continue
		}
		switch {
		case c == '\\':
			out = append(out, '/')
		case c == '%':
			if v, valid := decodeEscaped(in, i); valid {
				if pathChars[v]&pcUnescape != 0 {
					out = append(out, v)
					i += 2
					if lastInvalidPercent >= len(out)-3 {
						out = checkNestedEscapes(in, i+1, lastInvalidPercent, out)
					}
				} else {
					out = append(out, '%', in[i+1], in[i+2])
					i += 2
					if pathChars[v]&pcInvalid == pcInvalid {
						ok = false
					}
				}
			} else {
				lastInvalidPercent = len(out)
				out = append(out, '%')
			}
		case flags&pcInvalid == pcInvalid:
			out = appendEscaped(out, c)
			ok = false
		case flags&pcEscape == pcEscape:
			out = appendEscaped(out, c)
		}
	}
	return string(out), ok
}

// isCanonical reports a path canonicalPath would return unchanged: it
// starts with '/' and has no byte the canonicaliser treats specially
// (dots, backslashes, '%', controls, characters to escape).
func isCanonical(in string) bool {
	if in == "" || in[0] != '/' {
		return false
	}
	for i := 1; i < len(in); i++ {
		if pathChars[in[i]]&pcSpecial != 0 {
			return false
		}
	}
	return true
}

func isURLSlash(c byte) bool { return c == '/' || c == '\\' }

// isDot returns the length of a dot at i: "." is 1, "%2e" (any case) 3.
func isDot(s string, i int) int {
	if s[i] == '.' {
		return 1
	}
	if s[i] == '%' && i+2 < len(s) && s[i+1] == '2' && (s[i+2] == 'e' || s[i+2] == 'E') {
		return 3
	}
	return 0
}

type dotKind uint8

const (
	notADirectory dotKind = iota
	directoryCurrent
	directoryUp
)

// classifyAfterDot looks at what follows a dot that follows a slash.
func classifyAfterDot(s string, after int) (dotKind, int) {
	if after == len(s) {
		return directoryCurrent, 0
	}
	if isURLSlash(s[after]) {
		return directoryCurrent, 1
	}
	if second := isDot(s, after); second > 0 {
		end := after + second
		if end == len(s) {
			return directoryUp, second
		}
		if isURLSlash(s[end]) {
			return directoryUp, second + 1
		}
	}
	return notADirectory, 0
}

// backUpToPreviousSlash drops the last segment of out (which ends in '/'),
// never going above the first slash.
func backUpToPreviousSlash(out []byte, begin int) []byte {
	i := len(out) - 1
	if i == begin {
		return out
	}
	i--
	for out[i] != '/' && i > begin {
		i--
	}
	return out[:i+1]
}

// decodeEscaped decodes "%XY" at i.
func decodeEscaped(s string, i int) (byte, bool) {
	if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
		return 0, false
	}
	return unhex(s[i+1])<<4 | unhex(s[i+2]), true
}

// checkNestedEscapes keeps "%%30%30"-style input from decoding into a new
// escape ("%00") that a later decoder would read: such a '%' becomes
// "%25" (Chromium's CheckForNestedEscapes).
func checkNestedEscapes(in string, next, lastInvalid int, out []byte) []byte {
	length := len(out)
	lastUnescaped := out[length-1]
	appendNext := lastInvalid == length-2
	if appendNext {
		if next == len(in) || in[next] >= 0x80 {
			return out
		}
		out = append(out, in[next])
	}
	if lastInvalid+2 < len(out) && isHex(out[lastInvalid+1]) && isHex(out[lastInvalid+2]) {
		if !appendNext {
			out = append(out, out[lastInvalid+1])
		}
		out[lastInvalid+1] = '2'
		out[lastInvalid+2] = '5'
		out = append(out, lastUnescaped)
	} else if appendNext {
		out = out[:length]
	}
	return out
}

func appendEscaped(out []byte, c byte) []byte {
	const hex = "0123456789ABCDEF"
	return append(out, '%', hex[c>>4], hex[c&0xf])
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
