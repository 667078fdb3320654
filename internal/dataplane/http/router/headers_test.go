package router

import (
	"net/url"
	"strings"
	"testing"
)

// TestSetUpstreamURL checks the upstream URL of a request path: the
// request line written from it (EscapedPath, RawQuery) is the path as the
// route left it, with only what net/url cannot carry percent-encoded, and
// Path is its decoded form — the same whether the path takes the plain
// fast path or goes through RawPath.
func TestSetUpstreamURL(t *testing.T) {
	for _, tc := range []struct{ in, path, escaped, query string }{
		{"/echo", "/echo", "/echo", ""},
		{"", "/", "/", ""},
		{"/a/b-c_d.e~f/$&+,;=:@", "/a/b-c_d.e~f/$&+,;=:@", "/a/b-c_d.e~f/$&+,;=:@", ""},
		{"/items?id=1&x", "/items", "/items", "id=1&x"},
		{"/p(1)*!'[x]", "/p(1)*!'[x]", "/p(1)*!'[x]", ""},
		{"/a%2Fb", "/a/b", "/a%2Fb", ""},
		{"/a b", "/a b", "/a%20b", ""},
		{"/100%", "/100%", "/100%25", ""},
		{"/caf\xc3\xa9", "/caf\xc3\xa9", "/caf%C3%A9", ""},
		{"/q?", "/q", "/q", ""},
	} {
		var u url.URL
		setUpstreamURL(&u, "svc:80", tc.in)
		if u.Path != tc.path || u.EscapedPath() != tc.escaped || u.RawQuery != tc.query {
			t.Errorf("%q: Path %q EscapedPath %q RawQuery %q, want %q %q %q", tc.in, u.Path, u.EscapedPath(), u.RawQuery, tc.path, tc.escaped, tc.query)
		}
		if u.Host != "svc:80" || u.Scheme != "http" {
			t.Errorf("%q: %s://%s", tc.in, u.Scheme, u.Host)
		}
	}
}

// FuzzUpstreamURL checks that the plain fast path and the general one
// give the same request line for any path.
func FuzzUpstreamURL(f *testing.F) {
	for _, p := range []string{"/echo", "/a%2Fb?x", "/p(1)", "/a b", "/%zz", ""} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		var fast url.URL
		setUpstreamURL(&fast, "h", p)
		// The general path alone.
		raw, _, _ := strings.Cut(p, "?")
		if raw == "" {
			raw = "/"
		}
		raw = escapeForURL(raw)
		dec, err := url.PathUnescape(raw)
		if err != nil {
			dec = raw
		}
		slow := url.URL{Path: dec, RawPath: raw}
		if fast.EscapedPath() != slow.EscapedPath() || fast.Path != slow.Path {
			t.Fatalf("%q: fast %q/%q, general %q/%q", p, fast.Path, fast.EscapedPath(), slow.Path, slow.EscapedPath())
		}
	})
}
