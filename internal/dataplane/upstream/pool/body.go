package pool

import (
	"context"
	"io"
	"sync/atomic"
)

type readWriteCloser interface {
	io.Reader
	io.Writer
	io.Closer
}

// body is a response body: the request it belongs to ends at EOF, at
// Close or at the first read error, whichever comes first. A read error
// is classified (Error) and reported to outlier detection; reads after
// Close are not.
type body struct {
	rc io.ReadCloser
	p  *Pool
	c  *conn
	// ctx is the attempt's (request-scoped, like an http.Request's): was
	// a read error our timeout?
	ctx   context.Context
	retry bool
	ended atomic.Bool
}

func (b *body) Read(buf []byte) (int, error) {
	n, err := b.rc.Read(buf)
	switch {
	case err == nil:
	case err == io.EOF:
		if b.ended.CompareAndSwap(false, true) {
			b.end()
		}
	default:
		if b.ended.CompareAndSwap(false, true) {
			kind := b.p.classify(b.ctx, b.c, err)
			b.end()
			err = b.p.fail(kind, err)
		}
	}
	return n, err
}

// Close ends the request. Closing before EOF abandons the rest of the
// response: an HTTP/1.1 connection then closes (unless the rest was
// already buffered), an HTTP/2 stream is reset.
func (b *body) Close() error {
	first := b.ended.CompareAndSwap(false, true)
	err := b.rc.Close()
	if first {
		b.end()
	}
	return err
}

func (b *body) end() {
	b.p.done(b.c)
	b.p.endRequest(b.retry)
}

// upgradeBody is the body of a 101 Switching Protocols response: the raw
// connection, readable and writable, which now belongs to the caller. It
// keeps counting as one of the host's connections, and its request as in
// flight, until closed: EOF only ends the upstream's direction.
type upgradeBody struct {
	body
	rw readWriteCloser
}

func (u *upgradeBody) Read(p []byte) (int, error) { return u.rw.Read(p) }

func (u *upgradeBody) Write(p []byte) (int, error) { return u.rw.Write(p) }

// CloseWrite half-closes the upgraded connection.
func (u *upgradeBody) CloseWrite() error { return u.c.nc.CloseWrite() }
