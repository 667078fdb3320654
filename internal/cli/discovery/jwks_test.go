package discovery

import (
	"strings"
	"testing"
	"time"
)

// TestJWKSRefreshFlag: the key set refresh interval comes from
// --jwt-pub-key-refresh-interval, whose default is Istio's environment
// variable PILOT_JWT_PUB_KEY_REFRESH_INTERVAL (else 20m); a bad value is
// refused naming the flag and the variable.
func TestJWKSRefreshFlag(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, env string
		args      []string
		want      time.Duration
		err       string
	}{
		{name: "default", want: 20 * time.Minute},
		{name: "env", env: "15s", want: 15 * time.Second},
		{name: "flag over env", env: "15s", args: []string{"--jwt-pub-key-refresh-interval", "2m"}, want: 2 * time.Minute},
		{name: "not a duration", env: "soon", err: "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL"},
		{name: "zero", args: []string{"--jwt-pub-key-refresh-interval", "0s"}, err: "--jwt-pub-key-refresh-interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", tc.env)
			}
			cmd := NewCommand(nil)
			if err := cmd.Flags().Parse(append([]string{"--config-dir", dir}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			v, _ := cmd.Flags().GetString("jwt-pub-key-refresh-interval")
			cfg, err := Options{ConfigDir: dir, JWKSRefresh: v, SecureGRPCAddress: "-", XDSAddress: ":15010"}.Config(nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.JWKSRefresh != tc.want {
				t.Errorf("JWKSRefresh %v, want %v", cfg.JWKSRefresh, tc.want)
			}
		})
	}
}
