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
	// h1 is the response this body is part of when our HTTP/1.1 client
	// read it (the body is h1.wrap), for Release.
	h1 *h1Response
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

// Release hands the response this body belongs to to a later response
// of the pool: the response struct, its header map and the array behind
// its values. Only our HTTP/1.1 client's responses are released, once
// their body has ended (read to EOF or closed) and when they have no
// trailers. The caller must be done with the response and with all it
// reaches but the values' strings (the head's text is not reused): a
// caller that keeps header values copies the slices first, and calls
// Release at most once: a second call could release the later response
// that reused the storage. It reports whether the response was released;
// one that was not is the collector's, as before.
func (b *body) Release() bool {
	// ended is set once our client's body has returned its end (EOF or
	// an error) or been closed: its reader is done with it.
	r := b.h1
	if r == nil || !b.ended.Load() || r.resp.Trailer != nil {
		return false
	}
	r.release()
	return true
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
