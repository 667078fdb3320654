package route

import (
	"slices"
	"testing"
	"time"
)

func TestParseRetryOn(t *testing.T) {
	on, unknown := ParseRetryOn(" 5xx,gateway-error, reset,connect-failure,retriable-4xx,refused-stream,retriable-status-codes,retriable-headers,,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,bogus")
	for _, c := range []RetryOn{Retry5xx, RetryGatewayError, RetryReset, RetryConnectFailure, RetryRetriable4xx, RetryRefusedStream,
		RetryRetriableStatusCodes, RetryRetriableHeaders, RetryGRPCCancelled, RetryGRPCDeadlineExceeded, RetryGRPCInternal,
		RetryGRPCResourceExhausted, RetryGRPCUnavailable} {
		if !on.Has(c) {
			t.Errorf("missing %v", c)
		}
	}
	if on.Has(RetryResetBeforeRequest) {
		t.Error("reset-before-request set")
	}
	if !slices.Equal(unknown, []string{"bogus"}) {
		t.Errorf("unknown = %q", unknown)
	}
	if s := (Retry5xx | RetryGRPCUnavailable).String(); s != "5xx,unavailable" {
		t.Errorf("String = %q", s)
	}
}

func TestRetryPolicy(t *testing.T) {
	tbl := compileJSON(t, `{"name":"rc","virtual_hosts":[{"name":"v","domains":["*"],
	 "retry_policy":{"retry_on":"connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes","num_retries":2,
	   "retriable_status_codes":[503],"host_selection_retry_max_attempts":"5",
	   "retry_host_predicate":[{"name":"envoy.retry_host_predicates.previous_hosts","typed_config":{"@type":"type.googleapis.com/google.protobuf.Empty"}}]},
	 "routes":[
	  {"name":"inherit","match":{"prefix":"/inherit"},"route":{"cluster":"c"}},
	  {"name":"own","match":{"prefix":"/own"},"route":{"cluster":"c","retry_policy":{"retry_on":"5xx,retriable-headers","per_try_timeout":"2s",
	    "retriable_headers":[{"name":"x-retry","present_match":true}],"retriable_request_headers":[{"name":":method","string_match":{"exact":"GET"}}]}}},
	  {"name":"backoff","match":{"prefix":"/backoff"},"route":{"cluster":"c","retry_policy":{"retry_on":"gateway-error","retry_back_off":{"base_interval":"0.1s"}}}},
	  {"name":"tiny","match":{"prefix":"/tiny"},"route":{"cluster":"c","retry_policy":{"retry_back_off":{"base_interval":"0.0001s","max_interval":"0.0002s"}}}}]}]}`)
	retry := func(p string) *RetryPolicy { return tbl.Match(req("GET", "h", p)).Action.(*Forward).Retry }

	in := retry("/inherit")
	if in == nil || in.NumRetries != 2 || !in.PreviousHosts || in.HostSelectionMaxAttempts != 5 ||
		!in.RetriableStatus(503) || in.RetriableStatus(500) || !in.RetriableGRPCStatus(14) || in.RetriableGRPCStatus(13) {
		t.Errorf("inherited virtual host policy: %+v", in)
	}
	if in.BaseInterval != 25*time.Millisecond || in.MaxInterval != 250*time.Millisecond {
		t.Errorf("default back-off %v/%v, want 25ms/250ms", in.BaseInterval, in.MaxInterval)
	}

	own := retry("/own")
	if own == in {
		t.Fatal("route policy did not replace the virtual host's")
	}
	if own.NumRetries != 1 || own.PerTryTimeout != 2*time.Second || own.PreviousHosts || own.HostSelectionMaxAttempts != 1 {
		t.Errorf("route policy defaults: %+v; want 1 retry, 2s per try, no previous_hosts, 1 host selection attempt", own)
	}
	if !own.RetriableStatus(500) || !own.RetriableStatus(599) || own.RetriableStatus(409) {
		t.Error("5xx statuses")
	}
	if !own.RetriableResponseHeaders(HeaderMap{"x-retry": {"1"}}) || own.RetriableResponseHeaders(HeaderMap{}) {
		t.Error("retriable_headers")
	}
	if !own.RequestRetriable(req("GET", "h", "/")) || own.RequestRetriable(req("POST", "h", "/")) {
		t.Error("retriable_request_headers")
	}

	b := retry("/backoff")
	if b.BaseInterval != 100*time.Millisecond || b.MaxInterval != time.Second || !b.RetriableStatus(504) || b.RetriableStatus(500) {
		t.Errorf("back-off %v/%v", b.BaseInterval, b.MaxInterval)
	}
	if tiny := retry("/tiny"); tiny.BaseInterval != time.Millisecond || tiny.MaxInterval != time.Millisecond {
		t.Errorf("sub-millisecond back-off %v/%v, want 1ms/1ms", tiny.BaseInterval, tiny.MaxInterval)
	}

	compileErr(t, oneVhost(`{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c","retry_policy":{"retry_back_off":{"base_interval":"1s","max_interval":"0.5s"}}}}`),
		"max_interval", "base_interval")
}
