package http

import (
	"bytes"
	"log/slog"
	"testing"

	"golang.org/x/net/http2"
)

// guardFrames returns a client's stream of frames, after the preface:
// per stream a HEADERS frame and 64 KiB of DATA in 16 KiB frames, with a
// WINDOW_UPDATE and a PING now and then.
func guardFrames(tb testing.TB, streams int) (b []byte, frames int) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	data := make([]byte, 16<<10)
	for i := range streams {
		id := uint32(2*i + 1)
		must(tb, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: make([]byte, 200), EndHeaders: true}))
		for j := range 4 {
			must(tb, fr.WriteData(id, j == 3, data))
		}
		must(tb, fr.WriteWindowUpdate(0, 1<<16))
		must(tb, fr.WritePing(false, [8]byte{}))
		frames += 7
	}
	return buf.Bytes(), frames
}

func must(tb testing.TB, err error) {
	if err != nil {
		tb.Fatal(err)
	}
}

func testGuard() *h2Guard {
	m := &Manager{log: slog.New(slog.DiscardHandler)}
	m.cfg.h2lim = compileH2Limits(nil, DefaultMaxRequestHeadersKB<<10)
	return &h2Guard{m: m, lim: &m.cfg.h2lim}
}

// TestH2GuardScanSplit feeds the same frames whole and in every read size
// from 1 to 20 bytes: the guard must see the same frames either way.
func TestH2GuardScanSplit(t *testing.T) {
	b, frames := guardFrames(t, 3)
	for step := range 21 {
		g := testGuard()
		g.acksOut.Store(1 << 20) // PINGs answered
		g.dataOut.Store(1 << 20)
		if step == 0 {
			step = len(b)
		}
		for off := 0; off < len(b); off += step {
			if s, bad := g.scan(b[off:min(off+step, len(b))]); bad {
				t.Fatalf("step %d: %s on a well-formed stream", step, s)
			}
		}
		if g.streams != 3 || g.windowUpd != 3 || g.asks != 3 || g.remain != 0 || g.hn != 0 {
			t.Fatalf("step %d: streams %d, window updates %d, pings %d, remain %d, partial %d (of %d frames)",
				step, g.streams, g.windowUpd, g.asks, g.remain, g.hn, frames)
		}
	}
}

// BenchmarkH2GuardScan is the guard's cost on the request path: one op
// scans 100 streams' frames (700 frames, 6.4 MiB) as 64 KiB reads.
func BenchmarkH2GuardScan(b *testing.B) {
	buf, frames := guardFrames(b, 100)
	g := testGuard()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		g.streams, g.windowUpd, g.asks = 0, 0, 0
		g.acksOut.Store(1 << 30)
		g.dataOut.Store(1 << 30)
		for off := 0; off < len(buf); off += 64 << 10 {
			if _, bad := g.scan(buf[off:min(off+64<<10, len(buf))]); bad {
				b.Fatal("flood on a well-formed stream")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*frames), "ns/frame")
}

// BenchmarkH2GuardSmallFrames is the worst case: a read full of 9-byte
// frames (empty-payload SETTINGS ACKs), every byte a frame header byte.
func BenchmarkH2GuardSmallFrames(b *testing.B) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	for range 1000 {
		must(b, fr.WriteSettingsAck())
	}
	g := testGuard()
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, bad := g.scan(buf.Bytes()); bad {
			b.Fatal("flood")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/frame")
}
