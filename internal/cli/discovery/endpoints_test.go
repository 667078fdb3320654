package discovery

import (
	"strings"
	"testing"
)

// TestSendUnhealthyEndpointsFlag: --send-unhealthy-endpoints defaults to
// Istio's PILOT_SEND_UNHEALTHY_ENDPOINTS (else false) and reaches the
// control plane's configuration; a value that is not a boolean is refused
// naming the flag and the variable.
func TestSendUnhealthyEndpointsFlag(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, env string
		args      []string
		want      bool
		err       string
	}{
		{name: "default", want: false},
		{name: "env", env: "true", want: true},
		{name: "flag over env", env: "true", args: []string{"--send-unhealthy-endpoints=false"}, want: false},
		{name: "not a boolean", env: "sometimes", err: "PILOT_SEND_UNHEALTHY_ENDPOINTS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := flagConfig(t, dir, "PILOT_SEND_UNHEALTHY_ENDPOINTS", tc.env, "send-unhealthy-endpoints", tc.args,
				func(o *Options, v string) { o.SendUnhealthyEndpoints = v })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.SendUnhealthyEndpoints != tc.want {
				t.Errorf("SendUnhealthyEndpoints %v, want %v", cfg.SendUnhealthyEndpoints, tc.want)
			}
		})
	}
}
