package router

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

func policy(on string, n uint32) *route.RetryPolicy {
	p := &route.RetryPolicy{NumRetries: n, BaseInterval: route.DefaultRetryBaseInterval, MaxInterval: 10 * route.DefaultRetryBaseInterval}
	p.On, _ = route.ParseRetryOn(on)
	return p
}

func resp(code int, h ...string) result {
	r := &http.Response{StatusCode: code, Header: http.Header{}}
	for i := 0; i+1 < len(h); i += 2 {
		r.Header.Set(h[i], h[i+1])
	}
	return result{resp: r}
}

func TestRetriable(t *testing.T) {
	wrap := func(e error) result { return result{err: fmt.Errorf("dial: %w", e)} }
	cases := []struct {
		on    string
		grpc  bool
		res   result
		retry bool
	}{
		{"5xx", false, resp(503), true},
		{"5xx", false, resp(404), false},
		{"5xx", false, wrap(ErrConnectFailure), true},
		{"5xx", false, wrap(ErrReset), true},
		{"5xx", false, result{err: errPerTryTimeout}, true},
		{"gateway-error", false, resp(502), true},
		{"gateway-error", false, resp(500), false},
		{"connect-failure", false, wrap(ErrConnectFailure), true},
		{"connect-failure", false, wrap(ErrConnectTimeout), true},
		{"connect-failure", false, wrap(ErrReset), false},
		{"connect-failure", false, resp(503), false},
		{"reset", false, wrap(ErrConnectionTermination), true},
		{"refused-stream", false, wrap(ErrRefusedStream), true},
		{"refused-stream", false, wrap(ErrReset), false},
		{"retriable-4xx", false, resp(409), true},
		{"5xx,reset", false, wrap(ErrOverflow), false},
		{"5xx,reset", false, wrap(ErrNoHealthyUpstream), false},
		{"unavailable", true, resp(200, "Grpc-Status", "14"), true},
		{"unavailable", false, resp(200, "Grpc-Status", "14"), false},
		{"unavailable", true, resp(200, "Grpc-Status", "13"), false},
		{"cancelled,internal", true, resp(200, "Grpc-Status", "13"), true},
		{"", false, wrap(ErrConnectFailure), false},
	}
	for _, tc := range cases {
		r := &retryState{policy: policy(tc.on, 1), grpc: tc.grpc}
		if got := r.retriable(tc.res); got != tc.retry {
			code := 0
			if tc.res.resp != nil {
				code = tc.res.resp.StatusCode
			}
			t.Errorf("retry_on %q grpc %v: %d / %v → %v, want %v", tc.on, tc.grpc, code, tc.res.err, got, tc.retry)
		}
	}
	p := policy("retriable-status-codes", 1)
	p.RetriableStatusCodes = []uint32{418}
	if r := (&retryState{policy: p}); !r.retriable(resp(418)) || r.retriable(resp(503)) {
		t.Error("retriable-status-codes")
	}
}

func TestBackoffBounds(t *testing.T) {
	// The n-th retry waits below (2^n - 1) × base, capped by the maximum.
	base := time.Millisecond
	p := &route.RetryPolicy{BaseInterval: base, MaxInterval: 5 * base}
	for retries, upper := range []time.Duration{base, 3 * base, 5 * base, 5 * base} {
		worst := uint64(1<<63 - 1)
		r := &retryState{policy: p, retries: uint32(retries), s: filter.NewStream(nil, nil, func() uint64 { return worst })}
		start := time.Now()
		if !r.backoff(context.Background()) {
			t.Fatal("backoff cancelled")
		}
		if d := time.Since(start); d >= upper+50*time.Millisecond {
			t.Errorf("retry %d waited %v, bound %v", retries+1, d, upper)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &retryState{policy: &route.RetryPolicy{BaseInterval: time.Hour, MaxInterval: time.Hour}, s: filter.NewStream(nil, nil, func() uint64 { return 1 << 40 })}
	if r.backoff(ctx) {
		t.Error("backoff ignored a cancelled context")
	}
}

func TestParseGRPCTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"1S": time.Second, "250m": 250 * time.Millisecond, "2H": 2 * time.Hour, "10n": 10} {
		if got, ok := parseGRPCTimeout(in); !ok || got != want {
			t.Errorf("%q: %v %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "S", "123456789S", "1x", "-1S"} {
		if _, ok := parseGRPCTimeout(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUpstreamURL(t *testing.T) {
	cases := map[string]string{
		"/a%2Fb?x=1":  "/a%2Fb?x=1",
		"//admin":     "//admin",
		"/a b|c^":     "/a%20b%7Cc%5E",
		"/100%zz":     "/100%25zz",
		"/q?":         "/q?",
		"/[v6]:@!$&'": "/[v6]:@!$&'",
	}
	for in, want := range cases {
		if got := upstreamURL("h", in).RequestURI(); got != want {
			t.Errorf("%q: RequestURI %q, want %q", in, got, want)
		}
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{"details": "details-shadow", "details:9080": "details-shadow:9080", "[::1]:80": "[::1]-shadow:80", "[::1]": "[::1]-shadow"} {
		if got := shadowHost(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
