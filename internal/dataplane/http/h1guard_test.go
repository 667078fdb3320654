package http

import (
	"strings"
	"testing"
)

// guardVerdict scans stream in pieces of size n (0: at once) and returns
// where the guard stopped it (-1 when it passed everything) and why.
func guardVerdict(stream string, n int) (int, string, *h1guard) {
	g := &h1guard{maxHead: 64 << 10}
	if n <= 0 {
		n = len(stream) + 1
	}
	for off := 0; off < len(stream); off += n {
		chunk := []byte(stream[off:min(off+n, len(stream))])
		k, err := g.scan(chunk)
		if err != nil {
			return off + k, err.reason, g
		}
	}
	return -1, "", g
}

func TestH1Guard(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	cases := []struct {
		name   string
		stream string
		reason string // "" means accepted
		stop   int    // where the stream is cut, for rejections
	}{
		{"simple", get, "", 0},
		{"pipelined fixed and chunked", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
			"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10  \r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n" + get, "", 0},
		{"bare LF heads", "GET / HTTP/1.1\nHost: a\n\n" + get, "", 0},
		{"leading CRLF", "\r\n\r\n" + get, "", 0},
		{"same CL twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "", 0},
		{"h2 preface steps aside", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00", "", 0},
		{"upgrade steps aside", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", "", 0},
		{"h2c upgrade does not step aside", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n" + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "Content-Length with Transfer-Encoding", len(get) + 14},
		{"CL and TE", get + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Content-Length with Transfer-Encoding", len(get)},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding on HTTP/1.0", 0},
		{"TE not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported Transfer-Encoding", 0},
		{"two TE", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n", "unsupported Transfer-Encoding", 0},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "obs-fold header continuation", 0},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "malformed header line", 0},
		{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", "malformed header line", 0},
		{"CL not a number", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", "invalid Content-Length", 0},
		{"CL differ", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "differing Content-Length values", 0},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", "invalid chunk size", 48},
		{"chunk size too long", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\n", "invalid chunk size", 48},
		{"chunk bare LF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n", "chunk-size line ends with bare LF", 48},
		{"chunk without CRLF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy", "chunk data not followed by CRLF", 52},
		{"obs-fold in trailer", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n x\r\n\r\n", "obs-fold in trailers", 57},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 2, 3, 7} {
				stop, reason, g := guardVerdict(tc.stream, n)
				if reason != tc.reason {
					t.Fatalf("pieces of %d: verdict %q, want %q", n, reason, tc.reason)
				}
				if reason == "" && !g.off && g.state != gsHead {
					t.Errorf("pieces of %d: ended in state %d", n, g.state)
				}
				if reason == "" {
					continue
				}
				if stop > tc.stop && n == 0 {
					t.Errorf("at once: stopped at %d, after the start of the offending element at %d", stop, tc.stop)
				}
				// Whatever was passed on must be acceptable by itself: the
				// offending element never reaches net/http whole.
				if _, r, _ := guardVerdict(tc.stream[:stop], 0); r != "" {
					t.Errorf("pieces of %d: passed on %q, which is itself rejected (%s)", n, tc.stream[:stop], r)
				}
			}
		})
	}
}

func TestH1GuardOversizedHeadStepsAside(t *testing.T) {
	g := &h1guard{maxHead: 100}
	if _, err := g.scan([]byte("GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 200))); err != nil || !g.off {
		t.Fatalf("err %v off %v: an oversized head is net/http's to reject (431)", err, g.off)
	}
}

// FuzzH1Guard checks that the guard never panics and that its verdict
// does not depend on how the stream is split into reads.
func FuzzH1Guard(f *testing.F) {
	f.Add("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", uint8(1))
	f.Add("POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nhi", uint8(3))
	f.Add("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", uint8(2))
	f.Fuzz(func(t *testing.T, stream string, split uint8) {
		stop1, reason1, _ := guardVerdict(stream, 0)
		stop2, reason2, _ := guardVerdict(stream, int(split%16)+1)
		if reason1 != reason2 {
			t.Fatalf("verdict depends on splitting: %q (at %d) vs %q (at %d)", reason1, stop1, reason2, stop2)
		}
	})
}
