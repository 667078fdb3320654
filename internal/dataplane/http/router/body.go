package router

import (
	"errors"
	"io"
	"sync"
)

// errBodyNotReplayable fails an attempt whose body can no longer be
// replayed (the buffer overflowed while a stale attempt was reading).
var errBodyNotReplayable = errors.New("request body is not replayable")

// errStaleAttempt is read by an abandoned attempt's body.
var errStaleAttempt = errors.New("request body read by an abandoned attempt")

// replayBody streams the downstream request body upstream and keeps what
// it has read, up to limit bytes, so that a retry can send the body again
// (Envoy's per_request_buffer_limit_bytes): the body is never buffered
// before it is sent. Once more than limit bytes have been read the copy is
// dropped and only the current attempt can go on (no retry, no mirror).
//
// Each attempt reads through its own view (attempt). Starting a new
// attempt invalidates the older views: a transport still reading an
// abandoned attempt's body gets an error. The downstream body is read by
// one view at a time, and never while the lock is held, so a new attempt
// can replay the buffered prefix while an abandoned one waits on the
// client.
type replayBody struct {
	src   io.ReadCloser
	limit int
	pool  *sync.Pool // of *[]byte with capacity limit

	mu       sync.Mutex
	cond     sync.Cond
	buf      *[]byte
	gen      int
	busy     bool // a view is reading src
	overflow bool
	broken   bool
	eof      bool
	srcErr   error // a non-EOF error reading downstream
	read     int64 // bytes read from downstream
}

func newReplayBody(src io.ReadCloser, limit int, pool *sync.Pool) *replayBody {
	b := &replayBody{src: src, limit: limit, pool: pool}
	b.cond.L = &b.mu
	if limit <= 0 {
		b.overflow = true
	}
	return b
}

// attempt returns the body for a new attempt; ok is false when the body
// cannot be replayed from its start.
func (b *replayBody) attempt() (io.ReadCloser, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen > 0 && (b.overflow || b.broken) {
		return nil, false
	}
	b.gen++
	b.cond.Broadcast()
	return &bodyView{b: b, gen: b.gen}, true
}

// replayable reports whether a retry could resend the whole body.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow && !b.broken && b.srcErr == nil
}

// complete returns a copy of the whole body once it has been read to its
// end within the limit (for mirrors).
func (b *replayBody) complete() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.eof || b.overflow || b.broken || b.srcErr != nil {
		return nil, false
	}
	if b.buf == nil {
		return nil, true
	}
	return append([]byte(nil), (*b.buf)...), true
}

// downstreamErr is the error reading the client's body, if any (a
// malformed chunked body, a reset stream).
func (b *replayBody) downstreamErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srcErr
}

// finished reports whether the downstream body has been read to its end
// (or failed).
func (b *replayBody) finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof || b.srcErr != nil
}

// bytesRead is how many body bytes came from downstream.
func (b *replayBody) bytesRead() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

// release returns the buffer to the pool; views fail afterwards.
func (b *replayBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	b.broken = true
	b.dropBuf()
	b.cond.Broadcast()
}

func (b *replayBody) dropBuf() {
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		b.pool.Put(b.buf)
		b.buf = nil
	}
}

func (b *replayBody) buffered() int {
	if b.buf == nil {
		return 0
	}
	return len(*b.buf)
}

type bodyView struct {
	b   *replayBody
	gen int
	off int
}

// Read replays the buffered prefix, then reads downstream.
func (v *bodyView) Read(p []byte) (int, error) {
	b := v.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		switch {
		case v.gen != b.gen:
			return 0, errStaleAttempt
		case b.broken:
			return 0, errBodyNotReplayable
		case !b.overflow && v.off < b.buffered():
			n := copy(p, (*b.buf)[v.off:])
			v.off += n
			return n, nil
		case b.srcErr != nil:
			return 0, b.srcErr
		case b.eof:
			return 0, io.EOF
		case b.busy:
			b.cond.Wait()
			continue
		}
		if len(p) == 0 {
			return 0, nil
		}
		b.busy = true
		b.mu.Unlock()
		n, err := b.src.Read(p)
		b.mu.Lock()
		b.busy = false
		b.cond.Broadcast()
		b.read += int64(n)
		if n > 0 && !b.overflow {
			if b.buffered()+n <= b.limit {
				if b.buf == nil {
					b.buf = b.pool.Get().(*[]byte)
				}
				*b.buf = append(*b.buf, p[:n]...)
				v.off += n
			} else {
				b.overflow = true
				b.dropBuf()
				if v.gen != b.gen {
					// The bytes went to an abandoned attempt and
					// cannot be replayed to the current one.
					b.broken = true
				}
			}
		}
		switch {
		case err == io.EOF:
			b.eof = true
		case err != nil:
			b.srcErr = err
		}
		if v.gen != b.gen {
			return 0, errStaleAttempt
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Close does not close the downstream body: the router owns it.
func (v *bodyView) Close() error { return nil }
