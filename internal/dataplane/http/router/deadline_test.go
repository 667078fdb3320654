package router

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// fakeDeadlines are stream timers as the connection manager's: the route
// timeout cancels the stream's own context.
type fakeDeadlines struct {
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	armed    time.Duration
	disarmed bool
	timer    *time.Timer
}

func (d *fakeDeadlines) ArmTimeout(after time.Duration, cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.armed = after
	d.timer = time.AfterFunc(after, func() { d.cancel(cause) })
}

func (d *fakeDeadlines) DisarmTimeout() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.disarmed = true
	if d.timer != nil {
		d.timer.Stop()
	}
}

// TestRouteTimeoutOnStreamDeadlines: a stream with the manager's timers
// gets the route timeout armed on them, and every attempt runs on the
// stream's own context (no context of the router's). The timeout still
// answers 504 UT upstream_response_timeout; the stream's context ending
// otherwise (the client gone) is DC, not UT; the deadline is disarmed
// when the router is done.
func TestRouteTimeoutOnStreamDeadlines(t *testing.T) {
	tbl := compileRoute(t, `{"name": "v", "domains": ["*"],
	  "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "main", "timeout": "0.05s"}}]}`)
	for _, tc := range []struct {
		name       string
		disconnect bool
		code       int
		flags      filter.Flags
		details    string
	}{
		{"route timeout", false, http.StatusGatewayTimeout, filter.UpstreamRequestTimeout, "upstream_response_timeout"},
		{"client gone", true, 0, filter.DownstreamConnectionTermination, "downstream_remote_disconnect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, w := stream(t, tbl, "GET", "")
			ctx, cancel := context.WithCancelCause(s.Request.Context())
			defer cancel(nil)
			s.SetContext(ctx)
			d := &fakeDeadlines{cancel: cancel}
			s.SetDeadlines(d)
			var got context.Context
			up := upstreamFunc(func(actx context.Context, _ string, _ PickContext, req *http.Request) (*http.Response, Info, error) {
				got = actx
				if tc.disconnect {
					cancel(context.Canceled)
				}
				<-actx.Done()
				return nil, Info{Host: "a"}, context.Cause(actx)
			})
			r := New(Config{Upstream: up})
			defer r.Close()
			r.ServeStream(s)
			if got != ctx {
				t.Error("the attempt did not run on the stream's context")
			}
			d.mu.Lock()
			armed, disarmed := d.armed, d.disarmed
			d.mu.Unlock()
			if armed != 50*time.Millisecond || !disarmed {
				t.Errorf("deadline armed %v, disarmed %v; want 50ms, disarmed", armed, disarmed)
			}
			if tc.code != 0 && w.Code != tc.code {
				t.Errorf("status %d, want %d", w.Code, tc.code)
			}
			if s.Record.Flags&tc.flags == 0 || s.Record.Details != tc.details {
				t.Errorf("flags %v details %q, want %v %q", s.Record.Flags, s.Record.Details, tc.flags, tc.details)
			}
			if tc.disconnect && s.Record.Flags&filter.UpstreamRequestTimeout != 0 {
				t.Error("a client disconnect was flagged UT")
			}
			if !tc.disconnect && !errors.Is(context.Cause(ctx), errRouteTimeout) {
				t.Errorf("stream context ended by %v, want the route timeout", context.Cause(ctx))
			}
		})
	}
}
