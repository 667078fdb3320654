package route

import (
	"net/http"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// Istio's default retry policy for outbound HTTP routes.
const (
	defaultRetryOn       = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
	defaultRetries       = 2
	hostSelectionRetries = 5

	previousHostsPredicate = "envoy.retry_host_predicates.previous_hosts"
	previousHostsType      = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
	previousPriorities     = "envoy.retry_priorities.previous_priorities"
	previousPrioritiesType = "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"
	// previousPrioritiesValue is PreviousPrioritiesConfig{update_frequency: 2}
	// in wire form (field 1, varint 2).
	previousPrioritiesValue = "\x08\x02"
)

// retryPolicy converts a VirtualService (or mesh default) retry policy as
// Istio's retry.ConvertPolicy: nil gives the default (2 retries on
// connect-failure, refused-stream, unavailable, cancelled and 503, other
// hosts preferred), attempts 0 turns retries off, otherwise the default with
// the policy's fields. consistentHash keeps retries on the same host (no
// previous_hosts predicate).
func retryPolicy(in *networking.HTTPRetry, consistentHash bool) *routev3.RetryPolicy {
	out := &routev3.RetryPolicy{
		NumRetries:                    wrapperspb.UInt32(defaultRetries),
		RetryOn:                       defaultRetryOn,
		HostSelectionRetryMaxAttempts: hostSelectionRetries,
		RetriableStatusCodes:          []uint32{http.StatusServiceUnavailable},
	}
	if !consistentHash {
		out.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{previousHosts()}
	}
	if in == nil {
		return out
	}
	if in.GetAttempts() <= 0 {
		return nil
	}
	out.NumRetries = wrapperspb.UInt32(uint32(in.GetAttempts()))
	if in.GetRetryOn() != "" {
		out.RetryOn, out.RetriableStatusCodes = parseRetryOn(in.GetRetryOn())
		if len(out.RetriableStatusCodes) > 0 && !strings.Contains(out.RetryOn, "retriable-status-codes") {
			if out.RetryOn != "" {
				out.RetryOn += ","
			}
			out.RetryOn += "retriable-status-codes"
		}
	}
	if t := in.GetPerTryTimeout(); t != nil {
		out.PerTryTimeout = copyDuration(t)
	}
	if v := in.GetRetryIgnorePreviousHosts(); v != nil {
		out.RetryHostPredicate = nil
		if v.GetValue() {
			out.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{previousHosts()}
		}
	}
	if in.GetRetryRemoteLocalities().GetValue() {
		out.RetryPriority = &routev3.RetryPolicy_RetryPriority{
			Name: previousPriorities,
			ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: &anypb.Any{
				TypeUrl: previousPrioritiesType,
				Value:   []byte(previousPrioritiesValue),
			}},
		}
	}
	if b := in.GetBackoff(); b != nil {
		out.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: copyDuration(b)}
	}
	return out
}

// parseRetryOn splits retryOn into Envoy retry conditions (HTTP ones like
// "5xx", gRPC ones like "deadline-exceeded") and HTTP status codes, which
// Envoy takes separately.
func parseRetryOn(s string) (string, []uint32) {
	var conds []string
	codes := []uint32{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n, err := strconv.Atoi(part); err == nil && http.StatusText(n) != "" {
			codes = append(codes, uint32(n))
			continue
		}
		conds = append(conds, part)
	}
	return strings.Join(conds, ","), codes
}

// previousHosts is the retry predicate that prefers hosts not tried yet.
// Its config is empty, so the Any is written directly.
func previousHosts() *routev3.RetryPolicy_RetryHostPredicate {
	return &routev3.RetryPolicy_RetryHostPredicate{
		Name:       previousHostsPredicate,
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: previousHostsType}},
	}
}

// shareRetryPolicy returns the retry policy for the virtual hosts of routes
// (nil: none), removing it from the routes that carry it. Envoy applies a
// virtual host's retry_policy to its routes that have none, so the policy
// most routes carry (typically the default) is written once: always when
// every forwarding route carries it (a lone route too: its shorter route
// action saves a byte), else when the copies saved outweigh what follows.
// Routes with another policy keep theirs. Routes without one (attempts 0)
// then get an empty policy, which Envoy reads exactly as no policy (no
// retry condition, and one retry if the request's x-envoy-retry-on asks;
// num_retries 0 would differ there, and gRPC rejects it), so that they do
// not inherit the virtual host's. Redirects and direct responses never
// retry and are left as they are. The routes are changed in place: they
// belong to the caller's virtual hosts only.
func shareRetryPolicy(routes []*routev3.Route) *routev3.RetryPolicy {
	var fwd []*routev3.RouteAction
	for _, r := range routes {
		if a := r.GetRoute(); a != nil {
			fwd = append(fwd, a)
		}
	}
	if len(fwd) == 1 { // the common case, a default route: no comparison needed
		p := fwd[0].GetRetryPolicy()
		fwd[0].RetryPolicy = nil
		return p
	}
	keys := make([]string, len(fwd)) // wire form of each route's policy ("" for none)
	count := map[string]int{}
	best, bestN, none := "", 0, 0
	for i, a := range fwd {
		if a.GetRetryPolicy() == nil {
			none++
			continue
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(a.GetRetryPolicy())
		if err != nil {
			return nil
		}
		keys[i] = string(b)
		count[keys[i]]++
		if n := count[keys[i]]; n > bestN { // first to reach the top count wins ties
			best, bestN = keys[i], n
		}
	}
	// Partly shared: saved, bestN-1 copies of the policy; spent, about 2
	// bytes (tag, empty length) per route without a policy.
	if bestN == 0 || bestN < len(fwd) && (bestN < 2 || (bestN-1)*len(best) <= 2*none+1) {
		return nil
	}
	var shared *routev3.RetryPolicy
	for i, a := range fwd {
		switch {
		case a.GetRetryPolicy() == nil:
			a.RetryPolicy = &routev3.RetryPolicy{}
		case keys[i] == best:
			if shared == nil {
				shared = a.GetRetryPolicy()
			}
			a.RetryPolicy = nil
		}
	}
	return shared
}
