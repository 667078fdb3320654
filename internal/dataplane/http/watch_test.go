package http

import (
	"context"
	"errors"
	"io"
	nethttp "net/http"
	"testing"
	"time"
)

// TestConnCtxWatch: a connection context's watchers run when it ends,
// unless unwatched first; Watch refuses once it has ended or is full.
func TestConnCtxWatch(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	c, stop := newConnCtx(parent)
	defer stop()
	ran := make(chan int, 2)
	id0, ok0 := c.Watch(func() { ran <- 0 })
	id1, ok1 := c.Watch(func() { ran <- 1 })
	if !ok0 || !ok1 {
		t.Fatal("Watch refused a function with free slots")
	}
	if _, ok := c.Watch(func() {}); ok {
		t.Error("Watch took more functions than it has room for")
	}
	if !c.Unwatch(id1) {
		t.Error("Unwatch of a waiting watcher reported false")
	}
	if c.Unwatch(id1) {
		t.Error("second Unwatch reported true")
	}
	cancel(errors.New("client gone"))
	select {
	case i := <-ran:
		if i != 0 {
			t.Fatalf("watcher %d ran, want 0 (1 was unwatched)", i)
		}
	case <-time.After(testWait):
		t.Fatal("watcher did not run when the context ended")
	}
	if c.Unwatch(id0) {
		t.Error("Unwatch of a watcher that ran reported true")
	}
	if _, ok := c.Watch(func() {}); ok {
		t.Error("Watch took a function after the context ended")
	}
	select {
	case i := <-ran:
		t.Fatalf("watcher %d ran after being unwatched", i)
	case <-time.After(20 * time.Millisecond):
	}
}

// TestH1RequestContextIsWatcher: the requests of an HTTP/1 connection
// carry its connCtx, which the upstream pool watches without
// context.AfterFunc, and a watcher runs when the client goes away.
func TestH1RequestContextIsWatcher(t *testing.T) {
	type watcher interface {
		Watch(func()) (int, bool)
		Unwatch(int) bool
	}
	ran := make(chan struct{})
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		wc, ok := r.Context().(watcher)
		if !ok {
			t.Errorf("request context %T is not a watcher", r.Context())
			return
		}
		if _, ok := wc.Watch(func() { close(ran) }); !ok {
			t.Error("Watch refused")
			return
		}
		<-r.Context().Done()
	}, func(s *h1Server) { s.closeCheck = 10 * time.Millisecond })
	_, _ = io.WriteString(h.client, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	h.client.Close()
	select {
	case <-ran:
	case <-time.After(testWait):
		t.Fatal("the watcher did not run when the client went away")
	}
}
