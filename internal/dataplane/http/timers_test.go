package http

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

var errTestRoute = errors.New("route timeout")

// timedExchange is an exchange over a fresh request, its stream's
// deadlines installed as the connection manager installs them.
func timedExchange(body string) *exchange {
	x := &exchange{}
	req := httptest.NewRequest("POST", "http://svc/", strings.NewReader(body))
	x.stream.Init(httptest.NewRecorder(), req, nil)
	x.body.rc = req.Body
	x.reqBody = &x.body
	x.stream.SetDeadlines(x)
	return x
}

// armIdle arms x's stream idle and request timeouts as startTimers does.
func armIdle(x *exchange, idle, request time.Duration) {
	x.arm()
	t := &x.timers
	t.idle = idle
	x.stream.OnActivity(t)
	x.body.timers = t
	t.mu.Lock()
	t.request = request
	t.schedule(0)
	t.mu.Unlock()
}

// endsWith waits up to limit for ctx to end and checks its cause.
func endsWith(t *testing.T, ctx context.Context, want error, limit time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
		if got := context.Cause(ctx); !errors.Is(got, want) {
			t.Fatalf("stream ended by %v, want %v", got, want)
		}
	case <-time.After(limit):
		t.Fatalf("stream not ended by %v within %v", want, limit)
	}
}

// staysOpen checks that ctx does not end within d.
func staysOpen(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatalf("stream ended by %v", context.Cause(ctx))
	case <-time.After(d):
	}
}

// TestStreamTimers: the stream idle, request and route timeouts share the
// stream's one context and one timer, and each still ends the stream with
// its own cause; activity postpones the idle timeout, the request body's
// end clears the request timeout, DisarmTimeout the route timeout, and
// nothing fires once the stream is finished.
func TestStreamTimers(t *testing.T) {
	t.Run("route timeout without other timers", func(t *testing.T) {
		x := timedExchange("")
		if x.stream.Context() != x.stream.Request.Context() {
			t.Fatal("an unarmed stream has a context of its own")
		}
		if !x.stream.Timeout(20*time.Millisecond, errTestRoute) {
			t.Fatal("Timeout: no deadlines")
		}
		if x.stream.Context() == x.stream.Request.Context() {
			t.Fatal("the route timeout did not give the stream its own context")
		}
		endsWith(t, x.stream.Context(), errTestRoute, 5*time.Second)
		x.timers.stop()
	})
	t.Run("route timeout disarmed", func(t *testing.T) {
		x := timedExchange("")
		x.stream.Timeout(20*time.Millisecond, errTestRoute)
		x.stream.StopTimeout()
		staysOpen(t, x.stream.Context(), 60*time.Millisecond)
		x.timers.stop()
	})
	t.Run("route timeout before a later idle timeout", func(t *testing.T) {
		x := timedExchange("")
		armIdle(x, time.Hour, 0)
		ctx := x.stream.Context()
		x.stream.Timeout(20*time.Millisecond, errTestRoute)
		if x.stream.Context() != ctx {
			t.Fatal("the route timeout made a second context")
		}
		endsWith(t, ctx, errTestRoute, 5*time.Second)
		x.timers.stop()
	})
	t.Run("idle timeout postponed by activity", func(t *testing.T) {
		x := timedExchange("")
		armIdle(x, 150*time.Millisecond, 0)
		x.stream.Timeout(time.Hour, errTestRoute)
		ctx := x.stream.Context()
		for range 8 {
			staysOpen(t, ctx, 20*time.Millisecond)
			_, _ = x.stream.Writer().Write([]byte("x"))
		}
		endsWith(t, ctx, filter.ErrStreamIdleTimeout, 5*time.Second)
		x.timers.stop()
	})
	t.Run("request timeout", func(t *testing.T) {
		x := timedExchange("body")
		armIdle(x, 0, 20*time.Millisecond)
		endsWith(t, x.stream.Context(), filter.ErrRequestTimeout, 5*time.Second)
		x.timers.stop()
	})
	t.Run("request timeout cleared by the body's end", func(t *testing.T) {
		x := timedExchange("body")
		armIdle(x, 0, 30*time.Millisecond)
		if _, err := io.ReadAll(&x.body); err != nil {
			t.Fatal(err)
		}
		staysOpen(t, x.stream.Context(), 80*time.Millisecond)
		x.timers.stop()
	})
	t.Run("nothing fires once stopped", func(t *testing.T) {
		x := timedExchange("")
		armIdle(x, 10*time.Millisecond, 0)
		x.stream.Timeout(10*time.Millisecond, errTestRoute)
		x.timers.stop()
		ctx := x.stream.Context()
		<-ctx.Done()
		if got := context.Cause(ctx); got != context.Canceled {
			t.Fatalf("stopped stream ended by %v, want context.Canceled", got)
		}
	})
}

// TestStreamContextWatch: the stream's context runs its watchers (the
// upstream pool's abort) when it ends for any reason — the request's
// context ending, a stream timeout, the stream's end — with the cause
// readable through it and through contexts derived from it; an unwatched
// function never runs; Watch declines when full or ended, and the caller
// falls back to context.AfterFunc. stop reports the stream clean (its
// exchange reusable) only when no timer, watcher or watch of the
// request's context ran.
func TestStreamContextWatch(t *testing.T) {
	sctx := func(x *exchange) *streamCtx { return x.stream.Context().(*streamCtx) }
	stopClean := func(t *testing.T, x *exchange, want bool) {
		t.Helper()
		if got := x.timers.stop(); got != want {
			t.Errorf("stop reported clean %v, want %v", got, want)
		}
	}
	newX := func(t *testing.T) (*exchange, context.CancelCauseFunc) {
		x := timedExchange("")
		parent, cancel := context.WithCancelCause(context.Background())
		t.Cleanup(func() { cancel(nil) })
		x.stream.Request = x.stream.Request.WithContext(parent)
		x.arm()
		return x, cancel
	}
	watch := func(t *testing.T, x *exchange) (int, chan struct{}) {
		t.Helper()
		ran := make(chan struct{})
		id, ok := sctx(x).Watch(func() { close(ran) })
		if !ok {
			t.Fatal("Watch declined on a live stream")
		}
		return id, ran
	}
	waitRan := func(t *testing.T, ran chan struct{}) {
		t.Helper()
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("the watcher did not run")
		}
	}
	errGone := errors.New("client gone")
	t.Run("request context ends", func(t *testing.T) {
		x, cancel := newX(t)
		_, ran := watch(t, x)
		child, stop := context.WithCancel(x.stream.Context())
		defer stop()
		cancel(errGone)
		waitRan(t, ran)
		if got := context.Cause(x.stream.Context()); got != errGone {
			t.Errorf("stream cause %v, want %v", got, errGone)
		}
		if got := context.Cause(child); got != errGone {
			t.Errorf("derived context's cause %v, want %v", got, errGone)
		}
		stopClean(t, x, false)
	})
	t.Run("stream timeout", func(t *testing.T) {
		x, _ := newX(t)
		_, ran := watch(t, x)
		child, stop := context.WithCancelCause(x.stream.Context())
		defer stop(nil)
		x.stream.Timeout(10*time.Millisecond, errTestRoute)
		waitRan(t, ran)
		if got := context.Cause(child); got != errTestRoute {
			t.Errorf("derived context's cause %v, want %v", got, errTestRoute)
		}
		stopClean(t, x, false)
	})
	t.Run("stream end", func(t *testing.T) {
		x, _ := newX(t)
		_, ran := watch(t, x)
		stopClean(t, x, false) // the watcher's owner has not removed it
		waitRan(t, ran)
		if _, ok := sctx(x).Watch(func() {}); ok {
			t.Error("Watch took a function on an ended stream")
		}
	})
	t.Run("unwatched", func(t *testing.T) {
		x, cancel := newX(t)
		id, ran := watch(t, x)
		if !sctx(x).Unwatch(id) {
			t.Fatal("Unwatch of a watcher that had not run reported false")
		}
		cancel(errGone)
		<-x.stream.Context().Done()
		select {
		case <-ran:
			t.Fatal("an unwatched function ran")
		case <-time.After(50 * time.Millisecond):
		}
		if sctx(x).Unwatch(id) {
			t.Error("second Unwatch reported true")
		}
		stopClean(t, x, false) // the request's context ended
	})
	t.Run("unwatched, then ended", func(t *testing.T) {
		x, _ := newX(t)
		id, _ := watch(t, x)
		x.stream.Timeout(time.Hour, errTestRoute)
		if !sctx(x).Unwatch(id) {
			t.Fatal("Unwatch of a watcher that had not run reported false")
		}
		stopClean(t, x, true)
	})
	t.Run("ran, then unwatched", func(t *testing.T) {
		x, cancel := newX(t)
		id, ran := watch(t, x)
		cancel(errGone)
		waitRan(t, ran)
		if sctx(x).Unwatch(id) {
			t.Error("Unwatch of a watcher that ran reported true")
		}
		stopClean(t, x, false)
	})
	t.Run("full", func(t *testing.T) {
		x, _ := newX(t)
		for range len(x.timers.w.fs) {
			watch(t, x)
		}
		if _, ok := sctx(x).Watch(func() {}); ok {
			t.Error("Watch took more functions than it has room for")
		}
		x.timers.stop()
	})
}
