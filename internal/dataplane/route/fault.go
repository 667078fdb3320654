package route

import (
	"fmt"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
)

// Filter names whose per-route configuration the table decodes.
const (
	FaultFilter = "envoy.filters.http.fault"
	CORSFilter  = "envoy.filters.http.cors"
)

// Fault is a decoded envoy.extensions.filters.http.fault.v3.HTTPFault.
//
// Supported: a fixed delay and an HTTP or gRPC abort, each with its
// percentage (unset is 0 %, the proto default, as Envoy), header
// conditions, downstream_nodes, max_active_faults and upstream_cluster.
// Ignored, with the flags below set so the filter can tell: header-
// controlled delays and aborts (x-envoy-fault-* headers), response rate
// limits, and the *_runtime overrides (no runtime layer).
type Fault struct {
	Delay *FaultDelay
	Abort *FaultAbort
	// UpstreamCluster, when set, restricts the fault to that cluster.
	UpstreamCluster string
	// DownstreamNodes, when set, restricts the fault to requests whose
	// x-envoy-downstream-service-node is listed.
	DownstreamNodes []string
	// MaxActiveFaults is max_active_faults; 0 with MaxActiveFaultsSet
	// false means unlimited.
	MaxActiveFaults    uint32
	MaxActiveFaultsSet bool

	HeaderDelay, HeaderAbort, RateLimit bool // configured but not applied

	headers []headerMatcher
}

// FaultDelay is a fixed delay applied to Percentage of requests.
type FaultDelay struct {
	Fixed      time.Duration
	Percentage Fraction
}

// FaultAbort ends Percentage of requests with HTTPStatus, or with a gRPC
// status (GRPCStatus, when GRPC is set: HTTP 200 with grpc-status).
type FaultAbort struct {
	HTTPStatus   int
	GRPC         bool
	GRPCStatus   uint32
	Percentage   Fraction
	ResponseBody string
}

func decodeFault(f *faultv3.HTTPFault) (*Fault, error) {
	out := &Fault{
		UpstreamCluster: f.GetUpstreamCluster(),
		DownstreamNodes: f.GetDownstreamNodes(),
		RateLimit:       f.GetResponseRateLimit() != nil,
	}
	if m := f.GetMaxActiveFaults(); m != nil {
		out.MaxActiveFaults, out.MaxActiveFaultsSet = m.GetValue(), true
	}
	if d := f.GetDelay(); d != nil {
		pct, err := fraction(d.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("delay.percentage: %w", err)
		}
		switch {
		case d.GetFixedDelay() != nil:
			out.Delay = &FaultDelay{Fixed: d.GetFixedDelay().AsDuration(), Percentage: pct}
		case d.GetHeaderDelay() != nil:
			out.HeaderDelay = true
		default:
			return nil, fmt.Errorf("delay has no fixed_delay or header_delay")
		}
	}
	if a := f.GetAbort(); a != nil {
		pct, err := fraction(a.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("abort.percentage: %w", err)
		}
		ab := &FaultAbort{Percentage: pct, ResponseBody: a.GetResponseBody()}
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus > 599 {
				return nil, fmt.Errorf("abort.http_status %d is outside [200, 600)", e.HttpStatus)
			}
			ab.HTTPStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			ab.GRPC, ab.GRPCStatus, ab.HTTPStatus = true, e.GrpcStatus, 200
		case *faultv3.FaultAbort_HeaderAbort_:
			out.HeaderAbort, ab = true, nil
		default:
			return nil, fmt.Errorf("abort has no error type")
		}
		out.Abort = ab
	}
	for i, h := range f.GetHeaders() {
		m, err := compileHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("headers[%d]: %w", i, err)
		}
		out.headers = append(out.headers, m)
	}
	return out, nil
}

// Applies reports whether the fault's request conditions hold: every
// header matcher matches and, when downstream_nodes is set, the
// x-envoy-downstream-service-node header is one of them.
func (f *Fault) Applies(req *Request) bool {
	if f == nil {
		return false
	}
	for i := range f.headers {
		if !f.headers[i].match(req) {
			return false
		}
	}
	if len(f.DownstreamNodes) > 0 {
		node, ok := req.Header("x-envoy-downstream-service-node")
		if !ok {
			return false
		}
		for _, n := range f.DownstreamNodes {
			if n == node {
				return true
			}
		}
		return false
	}
	return true
}

// DelayFor returns the delay to inject for the random value r (drawn by
// the filter for this decision), if any.
func (f *Fault) DelayFor(r uint64) (time.Duration, bool) {
	if f == nil || f.Delay == nil || !f.Delay.Percentage.Sample(r) {
		return 0, false
	}
	return f.Delay.Fixed, true
}

// AbortFor returns the abort to inject for the random value r, if any.
func (f *Fault) AbortFor(r uint64) (*FaultAbort, bool) {
	if f == nil || f.Abort == nil || !f.Abort.Percentage.Sample(r) {
		return nil, false
	}
	return f.Abort, true
}
