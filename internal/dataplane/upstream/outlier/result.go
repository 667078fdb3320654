package outlier

// Event is a local-origin or non-HTTP result, Envoy's Outlier::Result.
type Event uint8

const (
	// NoEvent: the result is the HTTP status alone.
	NoEvent Event = iota
	// LocalOriginConnectSuccess: the connection is up; the HTTP response
	// will tell the rest. Resets the local-origin counter when split, is
	// ignored otherwise.
	LocalOriginConnectSuccess
	// LocalOriginConnectSuccessFinal: the connection is up and that is the
	// whole transaction (TCP proxy). Counts as 200 when not split.
	LocalOriginConnectSuccessFinal
	// LocalOriginTimeout: the request timed out (504 when not split).
	LocalOriginTimeout
	// LocalOriginConnectFailed: no connection, or it was reset (503 when not
	// split).
	LocalOriginConnectFailed
	// ExtOriginRequestFailed: a non-HTTP upstream failed the transaction
	// (500 when not split, 503 when split).
	ExtOriginRequestFailed
	// ExtOriginRequestSuccess: a non-HTTP upstream completed the transaction.
	ExtOriginRequestSuccess
)

func (e Event) String() string {
	switch e {
	case NoEvent:
		return "none"
	case LocalOriginConnectSuccess:
		return "local_origin_connect_success"
	case LocalOriginConnectSuccessFinal:
		return "local_origin_connect_success_final"
	case LocalOriginTimeout:
		return "local_origin_timeout"
	case LocalOriginConnectFailed:
		return "local_origin_connect_failed"
	case ExtOriginRequestFailed:
		return "ext_origin_request_failed"
	case ExtOriginRequestSuccess:
		return "ext_origin_request_success"
	}
	return "unknown"
}

// Result is what the router reports for one attempt on one host.
//
//	Result{Status: 503}                               upstream answered 503
//	Result{Event: LocalOriginConnectFailed}           connect failed or reset
//	Result{Event: LocalOriginTimeout, Status: 504}    timed out; the router answers 504
//
// With an Event, Status is the code the router will answer with, used
// instead of the event's own mapping when local-origin errors are not split
// (Envoy's putResult(result, code)); it is ignored when they are split.
type Result struct {
	Status int
	Event  Event
}

func is5xx(code int) bool { return code >= 500 && code < 600 }

func isGatewayError(code int) bool { return code == 502 || code == 503 || code == 504 }

// eventStatus maps a local-origin event to an HTTP status when errors are
// not split; ok is false for LocalOriginConnectSuccess, which says nothing.
func eventStatus(e Event) (status int, ok bool) {
	switch e {
	case ExtOriginRequestSuccess, LocalOriginConnectSuccessFinal:
		return 200, true
	case LocalOriginTimeout:
		return 504, true
	case LocalOriginConnectFailed:
		return 503, true
	case ExtOriginRequestFailed:
		return 500, true
	}
	return 0, false
}

// Type is why a host was ejected (Envoy's OutlierEjectionType).
type Type uint8

const (
	Consecutive5xx Type = iota
	ConsecutiveGatewayFailure
	ConsecutiveLocalOriginFailure
	SuccessRateExternal
	SuccessRateLocalOrigin
	FailurePercentageExternal
	FailurePercentageLocalOrigin
	numTypes
)

// String is the name Envoy uses in its ejections_enforced_<type> and
// ejections_detected_<type> counters.
func (t Type) String() string {
	switch t {
	case Consecutive5xx:
		return "consecutive_5xx"
	case ConsecutiveGatewayFailure:
		return "consecutive_gateway_failure"
	case ConsecutiveLocalOriginFailure:
		return "consecutive_local_origin_failure"
	case SuccessRateExternal:
		return "success_rate"
	case SuccessRateLocalOrigin:
		return "local_origin_success_rate"
	case FailurePercentageExternal:
		return "failure_percentage"
	case FailurePercentageLocalOrigin:
		return "local_origin_failure_percentage"
	}
	return "unknown"
}
