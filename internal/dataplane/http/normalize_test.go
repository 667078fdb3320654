package http

import (
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

func TestNormalize(t *testing.T) {
	base := normalizer{normalize: true}
	merge := normalizer{normalize: true, mergeSlashes: true}
	decode := normalizer{normalize: true, mergeSlashes: true, escapedSlashes: hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD}
	redirect := normalizer{normalize: true, mergeSlashes: true, escapedSlashes: hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT}
	reject := normalizer{normalize: true, mergeSlashes: true, escapedSlashes: hcmv3.HttpConnectionManager_REJECT_REQUEST}
	none := normalizer{}
	cases := []struct {
		name string
		n    normalizer
		in   string
		want string
		act  pathAction
	}{
		// SECURITY A1: slashes and dot segments.
		{"A1 double slash kept by BASE", base, "//admin", "//admin", pathForward},
		{"A1 double slash merged", merge, "//admin", "/admin", pathForward},
		{"A1 triple slash merged", merge, "///admin", "/admin", pathForward},
		{"A1 dot segment", base, "/./admin", "/admin", pathForward},
		{"A1 dot-dot then slash", merge, "/public/..//admin", "/admin", pathForward},
		{"A1 dot-dot above root", base, "/../../admin", "/admin", pathForward},
		{"A1 trailing dot-dot", base, "/a/b/..", "/a/", pathForward},
		{"A1 trailing dot", base, "/a/.", "/a/", pathForward},
		{"A1 dotted names kept", base, "/a/.b/..c/...", "/a/.b/..c/...", pathForward},
		// SECURITY A2: escaped slashes.
		{"A2 kept", merge, "/%2Fadmin", "/%2Fadmin", pathForward},
		{"A2 decoded", decode, "/%2Fadmin", "/admin", pathForward},
		{"A2 decoded lower case", decode, "/admin%2f", "/admin/", pathForward},
		{"A2 decoded then resolved", decode, "/public%2f..%2fadmin", "/admin", pathForward},
		{"A2 backslash escape decoded", decode, "/%5cadmin", "/admin", pathForward},
		{"A2 backslash escape kept", merge, "/%5Cadmin", "/%5Cadmin", pathForward},
		{"A2 rejected", reject, "/%2Fadmin", "", pathReject},
		{"A2 rejected backslash", reject, "/a%5Cb", "", pathReject},
		{"A2 redirect", redirect, "/a%2Fb", "/a/b", pathRedirect},
		{"A2 no escape no redirect", redirect, "/a/b", "/a/b", pathForward},
		{"raw backslash is a slash", merge, "/public\\..\\admin", "/admin", pathForward},
		// SECURITY A3: decode once, then resolve.
		{"A3 encoded dots", base, "/public/%2e%2e/admin", "/admin", pathForward},
		{"A3 mixed dots", base, "/public/.%2E/admin", "/admin", pathForward},
		{"A3 unreserved decoded", base, "/%61dmin", "/admin", pathForward},
		{"A3 reserved kept as sent", base, "/a%3Fb%3bc", "/a%3Fb%3bc", pathForward},
		// SECURITY A4: never twice.
		{"A4 double encoding", base, "/%252e%252e/admin", "/%252e%252e/admin", pathForward},
		{"A4 nested escape", base, "/%%32%65", "/%252e", pathForward},
		// SECURITY A5, A6.
		{"A5 fragment dropped", base, "/admin#x", "/admin", pathForward},
		{"A5 fragment after query", base, "/admin?a=1#x", "/admin?a=1", pathForward},
		{"A6 query kept, not normalised", base, "/admin?x=/../y&z=%2F", "/admin?x=/../y&z=%2F", pathForward},
		{"A6 empty query kept", base, "/admin?", "/admin?", pathForward},
		// SECURITY A7: controls.
		{"A7 encoded NUL", base, "/adm%00in", "", pathReject},
		{"A7 encoded CRLF", base, "/adm%0d%0ain", "", pathReject},
		{"A7 encoded LF upper", none, "/adm%0Ain", "", pathReject},
		{"A7 raw NUL", none, "/adm\x00in", "", pathReject},
		{"A7 raw CR in query", none, "/a?b=\r", "", pathReject},
		{"A7 raw DEL", base, "/a\x7f", "", pathReject},
		// Escaping of characters not allowed in a path.
		{"escape unsafe", base, "/a b\"<>`{|}^", "/a%20b%22%3C%3E%60%7B%7C%7D%5E", pathForward},
		{"escape high bytes", base, "/caf\xc3\xa9", "/caf%C3%A9", pathForward},
		{"invalid escape kept", base, "/100%zz", "/100%zz", pathForward},
		// Without normalisation only the checks apply.
		{"off keeps dots", none, "/a/../b//c", "/a/../b//c", pathForward},
		{"not origin form", base, "admin", "", pathReject},
		{"empty", base, "", "", pathReject},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, act := tc.n.apply(tc.in)
			if act != tc.act || (act != pathReject && got != tc.want) {
				t.Errorf("apply(%q) = %q, %d; want %q, %d", tc.in, got, act, tc.want, tc.act)
			}
		})
	}
}

// FuzzNormalize checks the normaliser's invariants on any input: it never
// panics; what it forwards is origin-form, free of controls and of
// encoded NUL/CR/LF; with normalize_path no "." or ".." segment survives
// (decoded or not); with merge_slashes no "//"; and normalising again
// changes nothing.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/", "//admin", "/./admin", "/public/..//admin", "/%2Fadmin", "/%5cadmin",
		"/public/%2e%2e/admin", "/%61dmin", "/%252e%252e/admin", "/admin#x", "/admin?x=1", "/a%00", "/%%30%30", "/a\\..\\b"} {
		f.Add(s, uint8(0))
	}
	actions := []hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction{
		hcmv3.HttpConnectionManager_KEEP_UNCHANGED, hcmv3.HttpConnectionManager_REJECT_REQUEST,
		hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD,
	}
	f.Fuzz(func(t *testing.T, in string, mode uint8) {
		if isCanonical(in) {
			if out, ok := rewritePath(in); !ok || out != in {
				t.Fatalf("isCanonical(%q) but the canonicaliser gives %q, %v", in, out, ok)
			}
		}
		n := normalizer{normalize: mode&1 != 0, mergeSlashes: mode&2 != 0, escapedSlashes: actions[(mode>>2)%4]}
		out, act := n.apply(in)
		if act == pathReject {
			return
		}
		if !strings.HasPrefix(out, "/") || hasControl(out) {
			t.Fatalf("apply(%q) = %q: not a clean origin-form path", in, out)
		}
		path, _, _ := strings.Cut(out, "?")
		if hasEncodedControl(path) {
			t.Fatalf("apply(%q) = %q: encoded control", in, out)
		}
		if n.normalize {
			for _, seg := range strings.Split(path, "/") {
				if d := strings.ToLower(seg); d == "." || d == ".." || d == "%2e" || d == "%2e%2e" || d == ".%2e" || d == "%2e." {
					t.Fatalf("apply(%q) = %q: dot segment %q survived", in, out, seg)
				}
			}
		}
		if n.mergeSlashes && strings.Contains(path, "//") {
			t.Fatalf("apply(%q) = %q: repeated slash", in, out)
		}
		again, act2 := n.apply(out)
		if act2 == pathReject || again != out {
			t.Fatalf("not idempotent: apply(%q) = %q, apply(%q) = %q (%d)", in, out, out, again, act2)
		}
	})
}

// TestCanonicalFastPath checks that the paths canonicalPath returns
// without rewriting are exactly those the full canonicaliser leaves
// unchanged, on paths with and without the bytes it treats specially.
func TestCanonicalFastPath(t *testing.T) {
	tests := []struct {
		in        string
		canonical bool
	}{
		{"/", true},
		{"/echo", true},
		{"/api/v1/items-2_x~y", true},
		{"/a/b:c@d!$&'()*+,;=", true},
		{"/a/./b", false},
		{"/a/../b", false},
		{"/a%2fb", false},
		{"/a\\b", false},
		{"/a b", false},
		{"/a\x00", false},
		{"a/b", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := isCanonical(tc.in); got != tc.canonical {
				t.Fatalf("isCanonical(%q) = %v, want %v", tc.in, got, tc.canonical)
			}
			slow, okSlow := rewritePath(tc.in)
			fast, okFast := canonicalPath(tc.in)
			if slow != fast || okSlow != okFast {
				t.Fatalf("canonicalPath(%q) = %q, %v; the full canonicaliser gives %q, %v", tc.in, fast, okFast, slow, okSlow)
			}
			if tc.canonical && fast != tc.in {
				t.Fatalf("canonicalPath(%q) = %q, want it unchanged", tc.in, fast)
			}
		})
	}
}
