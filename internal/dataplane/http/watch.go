package http

import (
	"context"
	"sync"
)

// watchers are functions to run, each in a goroutine of its own, when a
// context ends: the contexts this package gives requests (connCtx,
// streamCtx) implement the upstream HTTP/1 pool's watcher with them, so
// that watching a request's context costs no context.AfterFunc (an
// allocation and a registration with the parent per request). Two fixed
// slots: a request has at most one upstream attempt in flight, plus a
// mirror's.
type watchers struct {
	mu    sync.Mutex
	fs    [2]func()
	ended bool
}

// add takes f unless the watchers have run or both slots are in use.
func (w *watchers) add(f func()) (id int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return 0, false
	}
	for i := range w.fs {
		if w.fs[i] == nil {
			w.fs[i] = f
			return i, true
		}
	}
	return 0, false
}

// remove drops the watcher id and reports whether it had not run (and
// never will), as the stop function of context.AfterFunc does.
func (w *watchers) remove(id int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fs[id] == nil {
		return false
	}
	w.fs[id] = nil
	return true
}

// run runs the watchers added so far, refuses later ones, and reports
// how many it ran.
func (w *watchers) run() (n int) {
	w.mu.Lock()
	w.ended = true
	fs := w.fs
	w.fs = [len(w.fs)]func(){}
	w.mu.Unlock()
	for _, f := range fs {
		if f != nil {
			go f()
			n++
		}
	}
	return n
}

// connCtx is the context an HTTP/1 connection gives its requests (the
// connection's own, cancelled when the client goes away or Serve's
// context ends) with watchers: one context.AfterFunc per connection runs
// them, instead of one per request.
type connCtx struct {
	context.Context
	w watchers
}

// newConnCtx wraps ctx; stop ends the watch of ctx (once the connection
// is done).
func newConnCtx(ctx context.Context) (c *connCtx, stop func() bool) {
	c = &connCtx{Context: ctx}
	return c, context.AfterFunc(ctx, func() { c.w.run() })
}

// Watch runs f, in a goroutine of its own, when the context ends, unless
// Unwatch(id) comes first. It reports false, taking nothing, when the
// context has ended or both slots are in use: the caller then uses
// context.AfterFunc.
func (c *connCtx) Watch(f func()) (id int, ok bool) {
	if c.Err() != nil {
		return 0, false
	}
	return c.w.add(f)
}

// Unwatch removes the watcher id and reports whether it had not run.
func (c *connCtx) Unwatch(id int) bool { return c.w.remove(id) }

// watchContext runs f, in a goroutine of its own, when ctx ends: through
// ctx's watchers when it is a connCtx with a free slot, else with
// context.AfterFunc. stop is as context.AfterFunc's.
func watchContext(ctx context.Context, f func()) (stop func() bool) {
	if c, ok := ctx.(*connCtx); ok {
		if id, ok := c.Watch(f); ok {
			return func() bool { return c.Unwatch(id) }
		}
	}
	return context.AfterFunc(ctx, f)
}
