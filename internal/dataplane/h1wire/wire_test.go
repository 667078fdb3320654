package h1wire

import (
	"net/http"
	"strings"
	"testing"
)

func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"host", "HOST", "x-request-id", "X-REQUEST-ID", "grpc-status", "a", "x_y-z", "already-Canonical-", strings.Repeat("ab-", 30)} {
		if got, want := CanonicalKey(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("CanonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = CanonicalKey("content-type") }); n != 0 {
		t.Errorf("CanonicalKey of a common lower-case name allocates %v times", n)
	}
}

func TestParseChunkSize(t *testing.T) {
	for line, want := range map[string]int64{"0": 0, "a": 10, "FF": 255, "1f;ext=1": 31, "10 \t": 16, "fffffffffffffff": 1<<60 - 1} {
		if n, ok := ParseChunkSize([]byte(line)); !ok || n != want {
			t.Errorf("ParseChunkSize(%q) = %d, %v; want %d", line, n, ok, want)
		}
	}
	for _, line := range []string{"", ";x", "g", "-1", " 1", "0x10", "1000000000000000"} {
		if n, ok := ParseChunkSize([]byte(line)); ok {
			t.Errorf("ParseChunkSize(%q) = %d, accepted", line, n)
		}
	}
}

func TestParseContentLength(t *testing.T) {
	for v, want := range map[string]int64{"0": 0, "1024": 1024, "999999999999999999": 999999999999999999} {
		if n, ok := ParseContentLength(v); !ok || n != want {
			t.Errorf("ParseContentLength(%q) = %d, %v", v, n, ok)
		}
	}
	for _, v := range []string{"", "+1", "-1", "1 ", "0x1", "1,1", "1000000000000000000"} {
		if _, ok := ParseContentLength(v); ok {
			t.Errorf("ParseContentLength(%q) accepted", v)
		}
	}
}

func TestLinesTokensWhitespace(t *testing.T) {
	if l, r := CutLine("a\r\nb"); l != "a" || r != "b" {
		t.Errorf("CutLine CRLF: %q %q", l, r)
	}
	if l, r := CutLine("a\nb"); l != "a" || r != "b" {
		t.Errorf("CutLine LF: %q %q", l, r)
	}
	if l, r := CutLine("a\rb"); l != "a\rb" || r != "" {
		t.Errorf("CutLine inner CR: %q %q", l, r)
	}
	if got := TrimOWS(" \tv a\t "); got != "v a" {
		t.Errorf("TrimOWS = %q", got)
	}
	for s, want := range map[string]bool{"GET": true, "x-y_z": true, "": false, "a b": false, "a:b": false, "é": false} {
		if ValidToken(s) != want {
			t.Errorf("ValidToken(%q) != %v", s, want)
		}
	}
}

func TestGet(t *testing.T) {
	h := map[string][]string{"Content-Type": {"a", "b"}, "X-Empty": {}}
	for _, tc := range []struct{ key, want string }{
		{"Content-Type", "a"}, {"X-Empty", ""}, {"Absent", ""}, {"content-type", ""}, // not canonicalised
	} {
		if got := Get(h, tc.key); got != tc.want {
			t.Errorf("Get(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestReusable(t *testing.T) {
	small := map[string][]string{"A": {"1"}, "B": {"2"}}
	if got := Reusable(small, 2); got == nil || len(got) != 0 {
		t.Errorf("a map within the bound: %v, want it emptied", got)
	}
	big := map[string][]string{"A": {"1"}, "B": {"2"}, "C": {"3"}}
	if got := Reusable(big, 2); got != nil {
		t.Errorf("a map over the bound: %v, want nil", got)
	}
}
