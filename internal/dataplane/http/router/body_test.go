package router

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

func newPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 0, 16); return &b }}
}

// chunks is a body that returns its pieces one Read at a time.
type chunks struct {
	parts []string
	err   error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func (c *chunks) Close() error { return nil }

func TestReplayBody(t *testing.T) {
	t.Run("a retry replays what was read, then reads on", func(t *testing.T) {
		b := newReplayBody(&chunks{parts: []string{"hello ", "world", "!"}}, 64, newPool())
		first, _ := b.attempt()
		buf := make([]byte, 6)
		if n, _ := first.Read(buf); string(buf[:n]) != "hello " {
			t.Fatalf("first read %q", buf[:n])
		}
		second, ok := b.attempt()
		if !ok {
			t.Fatal("not replayable")
		}
		if _, err := first.Read(buf); !errors.Is(err, errStaleAttempt) {
			t.Errorf("abandoned attempt read: %v", err)
		}
		got, err := io.ReadAll(second)
		if err != nil || string(got) != "hello world!" {
			t.Errorf("retry body %q, %v", got, err)
		}
		if data, ok := b.complete(); !ok || string(data) != "hello world!" {
			t.Errorf("complete() = %q, %v", data, ok)
		}
		if b.bytesRead() != 12 {
			t.Errorf("read %d bytes from downstream, want 12 (each once)", b.bytesRead())
		}
	})
	t.Run("overflow disables retries and mirrors", func(t *testing.T) {
		b := newReplayBody(&chunks{parts: []string{"0123456789", "abcdef"}}, 12, newPool())
		first, _ := b.attempt()
		got, err := io.ReadAll(first)
		if err != nil || string(got) != "0123456789abcdef" {
			t.Fatalf("body %q, %v", got, err)
		}
		if b.replayable() {
			t.Error("replayable after overflowing the limit")
		}
		if _, ok := b.attempt(); ok {
			t.Error("a retry was allowed after overflow")
		}
		if _, ok := b.complete(); ok {
			t.Error("complete after overflow")
		}
	})
	t.Run("downstream error is kept", func(t *testing.T) {
		bad := errors.New("malformed chunk")
		b := newReplayBody(&chunks{parts: []string{"ab"}, err: bad}, 64, newPool())
		v, _ := b.attempt()
		if _, err := io.ReadAll(v); !errors.Is(err, bad) {
			t.Errorf("read error %v", err)
		}
		if !errors.Is(b.downstreamErr(), bad) || b.replayable() || !b.finished() {
			t.Errorf("downstreamErr %v replayable %v finished %v", b.downstreamErr(), b.replayable(), b.finished())
		}
	})
	t.Run("zero limit streams without keeping", func(t *testing.T) {
		b := newReplayBody(io.NopCloser(strings.NewReader("data")), 0, newPool())
		v, _ := b.attempt()
		if got, _ := io.ReadAll(v); string(got) != "data" {
			t.Errorf("got %q", got)
		}
		if b.replayable() {
			t.Error("replayable with no buffer")
		}
	})
	t.Run("concurrent stale and current readers", func(t *testing.T) {
		// An abandoned attempt still reading while the retry replays:
		// the retry must see every byte exactly once, in order.
		pr, pw := io.Pipe()
		b := newReplayBody(pr, 1<<20, newPool())
		old, _ := b.attempt()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(io.Discard, old)
		}()
		go func() {
			for i := range 100 {
				pw.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 100))
			}
			pw.Close()
		}()
		cur, ok := b.attempt()
		if !ok {
			t.Fatal("not replayable")
		}
		got, err := io.ReadAll(cur)
		if err != nil || len(got) != 10000 {
			t.Fatalf("retry read %d bytes, %v", len(got), err)
		}
		for i := range 100 {
			if got[i*100] != byte('a'+i%26) {
				t.Fatalf("byte %d out of order", i*100)
			}
		}
		<-done
		b.release()
	})
}
