package router

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// errPerTryTimeout cancels an attempt at the route's per_try_timeout;
// errRouteTimeout cancels the whole request at the route timeout. Both are
// timeouts (Timeout() reports true) so that the Upstream, seeing them as
// the cause of its context's end, counts a local-origin timeout against
// the host (outlier detection) rather than a downstream cancellation.
var (
	errPerTryTimeout error = &timeoutError{"upstream per-try timeout"}
	errRouteTimeout  error = &timeoutError{"upstream request timeout"}
)

// timeoutError is a cancellation cause that is a timeout, as net.Error's
// Timeout and upstream/pool.IsTimeout understand it.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }

// Timeout reports true.
func (e *timeoutError) Timeout() bool { return true }

// result is one attempt's outcome.
type result struct {
	resp *http.Response
	info Info
	err  error
}

// retryState follows one request's retries under its route's policy.
type retryState struct {
	policy    *route.RetryPolicy
	remaining uint32
	retries   uint32 // retries done
	grpc      bool
	s         *filter.Stream // its Rand jitters the backoff
}

// newRetryState sets *r up for the request and returns it, or returns nil
// when the request may not be retried at all. r is the caller's (on its
// stack: no allocation per request).
func newRetryState(r *retryState, p *route.RetryPolicy, s *filter.Stream) *retryState {
	if p == nil || p.NumRetries == 0 || !p.RequestRetriable(&s.Routing) {
		return nil
	}
	*r = retryState{policy: p, remaining: p.NumRetries, grpc: s.GRPC, s: s}
	return r
}

// retriable reports whether the policy retries the outcome.
func (r *retryState) retriable(res result) bool {
	on := r.policy.On
	if res.err != nil {
		resetLike := on.Has(route.RetryReset) || on.Has(route.Retry5xx) || on.Has(route.RetryGatewayError)
		switch {
		case errors.Is(res.err, errPerTryTimeout):
			return resetLike
		case errors.Is(res.err, ErrNoCluster), errors.Is(res.err, ErrNoHealthyUpstream),
			errors.Is(res.err, ErrOverflow), errors.Is(res.err, ErrRetryOverflow),
			errors.Is(res.err, errBodyNotReplayable), errors.Is(res.err, errStaleAttempt):
			return false
		case errors.Is(res.err, ErrConnectFailure), errors.Is(res.err, ErrConnectTimeout):
			return resetLike || on.Has(route.RetryConnectFailure) || on.Has(route.RetryResetBeforeRequest)
		case errors.Is(res.err, ErrRefusedStream):
			return resetLike || on.Has(route.RetryRefusedStream)
		}
		return resetLike
	}
	p := r.policy
	if p.RetriableStatus(res.resp.StatusCode) {
		return true
	}
	if r.grpc {
		if v := h1wire.Get(res.resp.Header, "Grpc-Status"); v != "" {
			if code, err := strconv.Atoi(v); err == nil && p.RetriableGRPCStatus(code) {
				return true
			}
		}
	}
	return p.RetriableResponseHeaders(filter.Header(res.resp.Header))
}

// backoff waits before the next retry, as Envoy's
// JitteredExponentialBackOffStrategy: a random duration below
// (2^n - 1) × base for the n-th retry, capped at the maximum interval.
// It returns false when ctx ends first.
func (r *retryState) backoff(ctx context.Context) bool {
	base, maxI := r.policy.BaseInterval, r.policy.MaxInterval
	if base <= 0 {
		base = route.DefaultRetryBaseInterval
	}
	if maxI < base {
		maxI = 10 * base
	}
	n := min(r.retries+1, 30)
	upper := time.Duration((uint64(1)<<n)-1) * base
	if upper <= 0 || upper > maxI {
		upper = maxI
	}
	d := time.Duration(r.s.Rand() % uint64(upper))
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// parseGRPCTimeout parses a grpc-timeout header: at most 8 digits and a
// unit (H, M, S, m, u, n).
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}
