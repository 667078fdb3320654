package discovery

import (
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/discovery"
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
			cfg, err := flagConfig(t, dir, "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", tc.env, "jwt-pub-key-refresh-interval", tc.args,
				func(o *Options, v string) { o.JWKSRefresh = v })
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

// flagConfig parses args (after setting the environment variable env to
// val, when val is set) the way the command does, copies the string flag
// into fresh local-mode Options with set, and returns their Config.
func flagConfig(t *testing.T, dir, env, val, flag string, args []string, set func(*Options, string)) (discovery.Config, error) {
	t.Helper()
	if val != "" {
		t.Setenv(env, val)
	}
	cmd := NewCommand(nil)
	if err := cmd.Flags().Parse(append([]string{"--config-dir", dir}, args...)); err != nil {
		t.Fatal(err)
	}
	v, err := cmd.Flags().GetString(flag)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{ConfigDir: dir, SecureGRPCAddress: "-", XDSAddress: ":15010"}
	set(&o, v)
	return o.Config(nil)
}
