package route

import (
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// RetryOn is the set of retry conditions (RetryPolicy.retry_on).
type RetryOn uint32

// Retry conditions, named as in Envoy's x-envoy-retry-on and
// x-envoy-retry-grpc-on.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryResetBeforeRequest
	RetryConnectFailure
	RetryEnvoyRateLimited
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryRetriableHeaders
	RetryHTTP3PostConnectFailure
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

// retryOnNames maps condition names to bits, in declaration order.
var retryOnNames = [...]struct {
	name string
	bit  RetryOn
}{
	{"5xx", Retry5xx},
	{"gateway-error", RetryGatewayError},
	{"reset", RetryReset},
	{"reset-before-request", RetryResetBeforeRequest},
	{"connect-failure", RetryConnectFailure},
	{"envoy-ratelimited", RetryEnvoyRateLimited},
	{"retriable-4xx", RetryRetriable4xx},
	{"refused-stream", RetryRefusedStream},
	{"retriable-status-codes", RetryRetriableStatusCodes},
	{"retriable-headers", RetryRetriableHeaders},
	{"http3-post-connect-failure", RetryHTTP3PostConnectFailure},
	{"cancelled", RetryGRPCCancelled},
	{"deadline-exceeded", RetryGRPCDeadlineExceeded},
	{"internal", RetryGRPCInternal},
	{"resource-exhausted", RetryGRPCResourceExhausted},
	{"unavailable", RetryGRPCUnavailable},
}

// ParseRetryOn parses a comma-separated retry_on list as Envoy does
// (tokens trimmed, empty ones skipped). Unknown tokens are ignored by Envoy
// in route configuration; they are returned so callers can report them.
func ParseRetryOn(s string) (on RetryOn, unknown []string) {
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		found := false
		for _, n := range retryOnNames {
			if n.name == tok {
				on |= n.bit
				found = true
				break
			}
		}
		if !found {
			unknown = append(unknown, tok)
		}
	}
	return on, unknown
}

// Has reports whether every condition of c is set.
func (o RetryOn) Has(c RetryOn) bool { return o&c == c }

// String renders the set in Envoy's syntax.
func (o RetryOn) String() string {
	var parts []string
	for _, n := range retryOnNames {
		if o&n.bit != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}

// Envoy's retry defaults.
const (
	DefaultRetryBaseInterval = 25 * time.Millisecond
	// The maximum back-off defaults to ten times the base interval.
	defaultMaxIntervalFactor = 10
)

// RetryPolicy is a compiled RetryPolicy. It is immutable.
type RetryPolicy struct {
	On RetryOn
	// UnknownOn lists retry_on tokens Envoy would ignore.
	UnknownOn []string
	// NumRetries defaults to 1 when unset.
	NumRetries uint32
	// PerTryTimeout and PerTryIdleTimeout: 0 means none.
	PerTryTimeout     time.Duration
	PerTryIdleTimeout time.Duration
	// RetriableStatusCodes apply with retriable-status-codes.
	RetriableStatusCodes []uint32
	// PreviousHosts is set when the previous_hosts host predicate is
	// configured: retries avoid hosts already tried.
	PreviousHosts bool
	// HostPredicates lists every retry_host_predicate name.
	HostPredicates []string
	// HostSelectionMaxAttempts is host_selection_retry_max_attempts (Envoy
	// retries host selection once when unset).
	HostSelectionMaxAttempts int64
	// RetryPriority is the retry_priority extension name, if any.
	RetryPriority string
	// BaseInterval and MaxInterval are the back-off bounds: 25 ms and ten
	// times the base by default; both at least 1 ms.
	BaseInterval time.Duration
	MaxInterval  time.Duration
	// RetriableHeaders (response) and RetriableRequestHeaders (request).
	retriableHeaders        []headerMatcher
	retriableRequestHeaders []headerMatcher
}

// sharedRetry is compileRetry for the routes of t: routes with equal
// policies (Istio gives every route the same default) share one compiled
// policy, which is immutable.
func (t *Table) sharedRetry(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	if p == nil {
		return nil, nil
	}
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return compileRetry(p)
	}
	if out, ok := t.retries[string(key)]; ok {
		return out, nil
	}
	out, err := compileRetry(p)
	if err != nil {
		return nil, err
	}
	if t.retries == nil {
		t.retries = map[string]*RetryPolicy{}
	}
	t.retries[string(key)] = out
	return out, nil
}

func compileRetry(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	if p == nil {
		return nil, nil
	}
	out := &RetryPolicy{
		NumRetries:               1,
		HostSelectionMaxAttempts: 1,
		BaseInterval:             DefaultRetryBaseInterval,
		RetriableStatusCodes:     p.GetRetriableStatusCodes(),
		PerTryTimeout:            p.GetPerTryTimeout().AsDuration(),
		PerTryIdleTimeout:        p.GetPerTryIdleTimeout().AsDuration(),
	}
	out.On, out.UnknownOn = ParseRetryOn(p.GetRetryOn())
	if n := p.GetNumRetries(); n != nil {
		out.NumRetries = n.GetValue()
	}
	if n := p.GetHostSelectionRetryMaxAttempts(); n != 0 {
		out.HostSelectionMaxAttempts = n
	}
	for _, hp := range p.GetRetryHostPredicate() {
		out.HostPredicates = append(out.HostPredicates, hp.GetName())
		if hp.GetName() == "envoy.retry_host_predicates.previous_hosts" ||
			hp.GetTypedConfig().GetTypeUrl() == "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" {
			out.PreviousHosts = true
		}
	}
	out.RetryPriority = p.GetRetryPriority().GetName()
	out.MaxInterval = defaultMaxIntervalFactor * out.BaseInterval
	if b := p.GetRetryBackOff(); b != nil {
		out.BaseInterval = max(b.GetBaseInterval().AsDuration(), time.Millisecond)
		out.MaxInterval = defaultMaxIntervalFactor * out.BaseInterval
		if b.GetMaxInterval() != nil {
			out.MaxInterval = max(b.GetMaxInterval().AsDuration(), time.Millisecond)
			if out.MaxInterval < out.BaseInterval {
				return nil, fmt.Errorf("retry_back_off.max_interval %v must be greater than or equal to base_interval %v", out.MaxInterval, out.BaseInterval)
			}
		}
	}
	for i, h := range p.GetRetriableHeaders() {
		m, err := compileHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("retriable_headers[%d]: %w", i, err)
		}
		out.retriableHeaders = append(out.retriableHeaders, m)
	}
	for i, h := range p.GetRetriableRequestHeaders() {
		m, err := compileHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("retriable_request_headers[%d]: %w", i, err)
		}
		out.retriableRequestHeaders = append(out.retriableRequestHeaders, m)
	}
	return out, nil
}

// RetriableStatus reports whether an upstream HTTP status allows a retry
// under the policy's conditions: 5xx (any 5xx), gateway-error (502, 503,
// 504), retriable-4xx (409) and retriable-status-codes (the list).
func (p *RetryPolicy) RetriableStatus(code int) bool {
	if p == nil {
		return false
	}
	switch {
	case p.On.Has(Retry5xx) && code >= 500 && code <= 599:
		return true
	case p.On.Has(RetryGatewayError) && (code == 502 || code == 503 || code == 504):
		return true
	case p.On.Has(RetryRetriable4xx) && code == 409:
		return true
	}
	if p.On.Has(RetryRetriableStatusCodes) {
		for _, c := range p.RetriableStatusCodes {
			if int(c) == code {
				return true
			}
		}
	}
	return false
}

// RetriableGRPCStatus reports whether a gRPC status code (grpc-status)
// allows a retry: cancelled (1), deadline-exceeded (4), resource-exhausted
// (8), internal (13), unavailable (14).
func (p *RetryPolicy) RetriableGRPCStatus(code int) bool {
	if p == nil {
		return false
	}
	switch code {
	case 1:
		return p.On.Has(RetryGRPCCancelled)
	case 4:
		return p.On.Has(RetryGRPCDeadlineExceeded)
	case 8:
		return p.On.Has(RetryGRPCResourceExhausted)
	case 13:
		return p.On.Has(RetryGRPCInternal)
	case 14:
		return p.On.Has(RetryGRPCUnavailable)
	}
	return false
}

// RetriableResponseHeaders reports whether response headers match one of
// retriable_headers (condition retriable-headers). Headers are read through
// a Request whose Headers are the response's.
func (p *RetryPolicy) RetriableResponseHeaders(resp Headers) bool {
	if p == nil || !p.On.Has(RetryRetriableHeaders) {
		return false
	}
	r := Request{Headers: resp}
	for i := range p.retriableHeaders {
		if p.retriableHeaders[i].match(&r) {
			return true
		}
	}
	return false
}

// RequestRetriable reports whether the request may be retried at all:
// with retriable_request_headers configured, one of them must match.
func (p *RetryPolicy) RequestRetriable(req *Request) bool {
	if p == nil {
		return false
	}
	if len(p.retriableRequestHeaders) == 0 {
		return true
	}
	for i := range p.retriableRequestHeaders {
		if p.retriableRequestHeaders[i].match(req) {
			return true
		}
	}
	return false
}
