package filter

import "testing"

func TestFlagsString(t *testing.T) {
	cases := map[Flags]string{
		0:             "-",
		FaultInjected: "FI",
		UpstreamConnectionFailure | UpstreamRetryLimitExceeded: "UF,URX",
		UpstreamRequestTimeout | UpstreamRetryLimitExceeded:    "UT,URX",
		NoRouteFound:                   "NR",
		DownstreamRemoteReset:          "DR",
		NoClusterFound | DelayInjected: "DI,NC",
	}
	for f, want := range cases {
		if got := f.String(); got != want {
			t.Errorf("%d: %q, want %q", f, got, want)
		}
	}
	if len(flagNames) != 29 || DownstreamRemoteReset != 1<<28 {
		t.Errorf("flag table out of step with the constants")
	}
}

func TestGRPCStatusFor(t *testing.T) {
	for code, want := range map[int]int{400: GRPCInternal, 401: GRPCUnauthenticated, 403: GRPCPermissionDenied, 404: GRPCUnimplemented, 429: GRPCUnavailable, 503: GRPCUnavailable, 504: GRPCUnavailable, 500: GRPCUnknown} {
		if got := GRPCStatusFor(code); got != want {
			t.Errorf("%d → %d, want %d", code, got, want)
		}
	}
	if !IsGRPC("application/grpc") || !IsGRPC("application/grpc+proto") || !IsGRPC("application/grpc;x") || IsGRPC("application/grpcx") || IsGRPC("text/plain") {
		t.Error("IsGRPC")
	}
	if got := grpcMessage("50% off\n"); got != "50%25 off%0A" {
		t.Errorf("grpcMessage %q", got)
	}
}
