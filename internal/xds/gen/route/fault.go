package route

import (
	"errors"
	"fmt"

	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"
)

// grpcStatusNames are the gRPC status codes by number, as Istio accepts
// them in abort.grpcStatus.
var grpcStatusNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// translateFault converts fault injection into the fault filter's
// per-route config. Delays other than fixedDelay and aborts other than
// httpStatus/grpcStatus cannot be expressed: they are left out and reported
// (the rest of the fault stays). A fault with nothing left gives nil.
func translateFault(in *networking.HTTPFaultInjection) (*anypb.Any, error) {
	if in == nil {
		return nil, nil
	}
	var errs []error
	out := &faultv3.HTTPFault{}
	if d := in.GetDelay(); d != nil {
		if fixed := d.GetFixedDelay(); fixed != nil {
			out.Delay = &commonfaultv3.FaultDelay{
				FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: copyDuration(fixed)},
			}
			if d.GetPercentage() != nil {
				out.Delay.Percentage = percentToFraction(d.GetPercentage())
			} else {
				out.Delay.Percentage = integerToFraction(uint32(max(d.GetPercent(), 0))) //nolint:staticcheck // deprecated field still honoured
			}
		} else {
			errs = append(errs, errors.New("only fixedDelay is supported; delay left out"))
		}
	}
	if a := in.GetAbort(); a != nil {
		abort := &faultv3.FaultAbort{}
		if a.GetPercentage() != nil {
			abort.Percentage = percentToFraction(a.GetPercentage())
		}
		switch e := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			code, ok := grpcStatus(e.GrpcStatus)
			if !ok {
				errs = append(errs, fmt.Errorf("unknown grpcStatus %q; abort left out", e.GrpcStatus))
				abort = nil
				break
			}
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}
		default:
			errs = append(errs, errors.New("only httpStatus and grpcStatus aborts are supported; abort left out"))
			abort = nil
		}
		out.Abort = abort
	}
	if out.Delay == nil && out.Abort == nil {
		return nil, errors.Join(errs...)
	}
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, out, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	return a, errors.Join(errs...)
}

func grpcStatus(name string) (uint32, bool) {
	for i, n := range grpcStatusNames {
		if n == name {
			return uint32(i), true
		}
	}
	return 0, false
}

// percentToFraction turns a decimal percentage (0.1 = one request in a
// thousand) into parts per million, Istio's translation.
func percentToFraction(p *networking.Percent) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{
		Numerator:   uint32(p.GetValue() * 10000),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

// integerToFraction turns a whole percentage into parts per hundred.
func integerToFraction(p uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: p, Denominator: typev3.FractionalPercent_HUNDRED}
}
