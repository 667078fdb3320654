package router

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellismesh/trellis/internal/dataplane/route"
)

func compileRoute(t *testing.T, vhost string) *route.Table {
	t.Helper()
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal([]byte(`{"name": "r", "virtual_hosts": [`+vhost+`]}`), rc); err != nil {
		t.Fatal(err)
	}
	tbl, err := route.Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// TestAttemptContexts: without a per-try timeout every attempt runs on
// the request's context; with one, each attempt has its own, the timer
// re-armed per attempt cancels only the attempt it was armed for, and the
// attempt-count header of an earlier attempt is never rewritten. The
// record keeps the final attempt's host and peer identity.
func TestAttemptContexts(t *testing.T) {
	for _, perTry := range []bool{false, true} {
		t.Run(map[bool]string{false: "no per-try timeout", true: "per-try timeout"}[perTry], func(t *testing.T) {
			policy := `"retry_policy": {"retry_on": "5xx", "num_retries": 3}`
			if perTry {
				policy = `"retry_policy": {"retry_on": "5xx", "num_retries": 3, "per_try_timeout": "0.05s"}`
			}
			tbl := compileRoute(t, `{"name": "v", "domains": ["*"], "include_request_attempt_count": true,
			  "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "main", `+policy+`}}]}`)
			type call struct {
				ctx    context.Context
				req    *http.Request
				header http.Header
				cause  error
			}
			var mu sync.Mutex
			var calls []call
			up := upstreamFunc(func(ctx context.Context, _ string, pick PickContext, req *http.Request) (*http.Response, Info, error) {
				c := call{ctx: ctx, req: req, header: req.Header}
				defer func() {
					mu.Lock()
					calls = append(calls, c)
					mu.Unlock()
				}()
				if req.Context() != context.Background() {
					t.Errorf("attempt %d: the request carries a context; the attempt's is ctx", pick.Attempt)
				}
				switch pick.Attempt {
				case 0:
					if !perTry {
						return &http.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody}, Info{Host: "a", PeerIdentity: "spiffe://td/ns/x/sa/a"}, nil
					}
					<-ctx.Done() // the per-try timeout
					c.cause = context.Cause(ctx)
					return nil, Info{Host: "a", PeerIdentity: "spiffe://td/ns/x/sa/a"}, c.cause
				default:
					// Longer than what was left of the first attempt's
					// timer, shorter than a whole per-try timeout.
					time.Sleep(30 * time.Millisecond)
					c.cause = context.Cause(ctx)
					return ok("second"), Info{Host: "b", PeerIdentity: "spiffe://td/ns/x/sa/b"}, nil
				}
			})
			r := New(Config{Upstream: up})
			defer r.Close()
			s, w := stream(t, tbl, "GET", "")
			r.ServeStream(s)
			if w.Code != 200 || w.Body.String() != "second" {
				t.Fatalf("response %d %q", w.Code, w.Body.String())
			}
			if s.Record.Attempts != 2 {
				t.Errorf("%d attempts, want 2", s.Record.Attempts)
			}
			// The record names the host of the final attempt and its
			// verified identity.
			if s.Record.UpstreamHost != "b" || s.Record.UpstreamPeerIdentity != "spiffe://td/ns/x/sa/b" {
				t.Errorf("record upstream %q %q, want b's", s.Record.UpstreamHost, s.Record.UpstreamPeerIdentity)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != 2 {
				t.Fatalf("%d calls", len(calls))
			}
			for i, c := range calls {
				if got, want := c.header.Get("X-Envoy-Attempt-Count"), []string{"1", "2"}[i]; got != want {
					t.Errorf("attempt %d sent attempt count %q, want %q", i, got, want)
				}
			}
			if perTry {
				if !errors.Is(calls[0].cause, errPerTryTimeout) {
					t.Errorf("first attempt ended by %v, want the per-try timeout", calls[0].cause)
				}
				if calls[1].cause != nil {
					t.Errorf("second attempt canceled during its round trip: %v", calls[1].cause)
				}
				if calls[0].ctx == calls[1].ctx {
					t.Error("attempts share a context")
				}
			} else if calls[0].ctx != calls[1].ctx {
				t.Error("attempts without a per-try timeout do not share the request's context")
			}
		})
	}
}
