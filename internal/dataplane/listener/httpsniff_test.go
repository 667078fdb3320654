package listener

import (
	"slices"
	"strings"
	"testing"
)

func TestSniffHTTPProtocol(t *testing.T) {
	tests := []struct {
		in    string
		want  string
		wantS sniffStatus
	}{
		{http2Preface, alpnH2C, sniffHTTP},
		{http2Preface + "\x00\x00\x12\x04", alpnH2C, sniffHTTP},
		{"PRI * HTTP/2.0\r\n", "", sniffNeedMore},
		{"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", alpnHTTP10, sniffHTTP}, // not the preface: a request line of version 2.0
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", alpnHTTP11, sniffHTTP},
		{"GET / HTTP/1.1\n", alpnHTTP11, sniffHTTP},
		{"POST /x?y=1 HTTP/1.0\r\n", alpnHTTP10, sniffHTTP},
		{"CUSTOM-METHOD http://a.example.com/ HTTP/1.1\r\n", alpnHTTP11, sniffHTTP},
		{"GET / HTTP/1.1", "", sniffNeedMore},
		{"GET / HTTP/1.", "", sniffNeedMore},
		{"GET /very/long/path", "", sniffNeedMore},
		{"G", "", sniffNeedMore},
		{"", "", sniffNeedMore},
		{"\r\nGET / HTTP/1.1\r\n", "", sniffNotHTTP},
		{"GET  / HTTP/1.1\r\n", "", sniffNotHTTP},
		{"GET / HTTP/1.1 \r\n", "", sniffNotHTTP},
		{"GET / http/1.1\r\n", "", sniffNotHTTP},
		{"GET / HTTP/11\r\n", "", sniffNotHTTP},
		{"GET /a\x00b HTTP/1.1\r\n", "", sniffNotHTTP},
		{"GET / HTTP/1.1\rX", "", sniffNotHTTP},
		{"\x16\x03\x01\x02\x00", "", sniffNotHTTP}, // TLS
		{"SSH-2.0-OpenSSH_9.6\r\n", "", sniffNotHTTP},
		{"*1\r\n$4\r\nPING\r\n", "", sniffNotHTTP}, // Redis
	}
	for _, tc := range tests {
		got, st := sniffHTTPProtocol([]byte(tc.in))
		if got != tc.want || st != tc.wantS {
			t.Errorf("%q: got %q/%v, want %q/%v", tc.in, got, st, tc.want, tc.wantS)
		}
	}
}

func FuzzSniffHTTPProtocol(f *testing.F) {
	for _, s := range []string{http2Preface, "GET / HTTP/1.1\r\n", "POST /a HTTP/1.0\n", "PRI * HTTP/2.0\r\n\r\nSM", "\x16\x03\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		proto, st := sniffHTTPProtocol(b)
		switch st {
		case sniffHTTP:
			if !slices.Contains([]string{alpnH2C, alpnHTTP11, alpnHTTP10}, proto) {
				t.Fatalf("protocol %q", proto)
			}
			if proto != alpnH2C && !strings.Contains(string(b), "\n") {
				t.Fatal("HTTP/1 without a complete request line")
			}
			// A decision is final: more bytes do not change it.
			if p2, st2 := sniffHTTPProtocol(append(slices.Clone(b), "x\r\n"...)); p2 != proto || st2 != st {
				t.Fatalf("appending changed %q to %q/%v", proto, p2, st2)
			}
		case sniffNotHTTP:
			if _, st2 := sniffHTTPProtocol(append(slices.Clone(b), ' ')); st2 != sniffNotHTTP {
				t.Fatal("appending turned non-HTTP into something else")
			}
		case sniffNeedMore:
			if proto != "" {
				t.Fatal("protocol while needing more")
			}
		}
	})
}
