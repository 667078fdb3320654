package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
)

// sidecarConfig parses args like the command does and builds the config.
func sidecarConfig(t *testing.T, env map[string]string, args ...string) (sidecarOptions, error) {
	t.Helper()
	o, _, err := sidecarConfigFull(t, env, args...)
	return o, err
}

// sidecarConfigFull is sidecarConfig returning the sidecar's config too.
func sidecarConfigFull(t *testing.T, env map[string]string, args ...string) (sidecarOptions, sidecar.Config, error) {
	t.Helper()
	d := deps{getenv: func(k string) string { return env[k] }}
	var o sidecarOptions
	f := pflag.NewFlagSet("sidecar", pflag.ContinueOnError)
	o.bindFlags(f, d)
	if err := f.Parse(args); err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	cfg, err := o.config(d)
	return o, cfg, err
}

// TestExitOnZeroFlags: Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS and
// MINIMUM_DRAIN_DURATION, as flags or environment variables.
func TestExitOnZeroFlags(t *testing.T) {
	base := []string{"--ip", "127.0.0.2", "--pod-name", "p"}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		exit    bool
		min     time.Duration
		wantErr string
	}{
		{"defaults", nil, nil, false, 5 * time.Second, ""},
		{"environment", map[string]string{"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "MINIMUM_DRAIN_DURATION": "1s"}, nil, true, time.Second, ""},
		{"flags over environment", map[string]string{"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "MINIMUM_DRAIN_DURATION": "1s"},
			[]string{"--exit-on-zero-active-connections=false", "--minimum-drain-duration", "3s"}, false, 3 * time.Second, ""},
		{"bad duration", map[string]string{"MINIMUM_DRAIN_DURATION": "5"}, nil, false, 0, "MINIMUM_DRAIN_DURATION"},
		{"negative", nil, []string{"--minimum-drain-duration", "-1s"}, false, 0, "--minimum-drain-duration"},
		{"not a boolean", map[string]string{"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "yes"}, nil, false, 0, "EXIT_ON_ZERO_ACTIVE_CONNECTIONS"},
		{"keep pages not a boolean", map[string]string{"TRELLIS_KEEP_STARTUP_PAGES": "on"}, nil, false, 0, "TRELLIS_KEEP_STARTUP_PAGES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, err := sidecarConfigFull(t, tc.env, append(append([]string{}, base...), tc.args...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ExitOnZeroActiveConnections != tc.exit || cfg.MinimumDrainDuration != tc.min {
				t.Fatalf("exit on zero %v, minimum drain %v; want %v, %v", cfg.ExitOnZeroActiveConnections, cfg.MinimumDrainDuration, tc.exit, tc.min)
			}
		})
	}
}

func TestSidecarIdentityFlags(t *testing.T) {
	base := []string{"--ip", "127.0.0.2", "--pod-name", "p", "--namespace", "shop", "--service-account", "web"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // error substring; "" = valid
	}{
		{"no CA: no identity", nil, nil, ""},
		{"local mode", nil, []string{"--ca-address", "127.0.0.1:15012", "--bootstrap-token", "/t", "--ca-root-cert", "/r"}, ""},
		{"CA_ADDR from the environment", map[string]string{"CA_ADDR": "istiod.istio-system.svc:15012"}, []string{"--bootstrap-token", "/t"}, ""},
		{"no token", nil, []string{"--ca-address", "127.0.0.1:15012"}, "--bootstrap-token"},
		{"no service account", nil, []string{"--ca-address", "127.0.0.1:15012", "--bootstrap-token", "/t", "--service-account", ""}, "--service-account"},
		{"negative GC headroom", nil, []string{"--gc-headroom-mib", "-1"}, "--gc-headroom-mib"},
		{"GC headroom from the environment", map[string]string{"TRELLIS_GC_HEADROOM_MIB": "4"}, nil, ""},
		{"bad GC headroom in the environment", map[string]string{"TRELLIS_GC_HEADROOM_MIB": "lots"}, nil, "TRELLIS_GC_HEADROOM_MIB"},
		{"bad GC minimum goal", nil, []string{"--gc-min-goal-mib", "1.5"}, "--gc-min-goal-mib"},
		{"bad GC minimum goal in the environment", map[string]string{"TRELLIS_GC_MIN_GOAL_MIB": "-3"}, nil, "TRELLIS_GC_MIN_GOAL_MIB"},
		{"bad trust domain", nil, []string{"--ca-address", "127.0.0.1:15012", "--bootstrap-token", "/t", "--trust-domain", "Bad_TD"}, "--trust-domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := sidecarConfig(t, tc.env, append(append([]string{}, base...), tc.args...)...)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				id, _ := o.identity()
				if (id.CAAddress != "") != (o.caAddress != "") || (id.CAAddress != "" && (id.Namespace != "shop" || id.ServiceAccount != "web" || id.TrustDomain != "cluster.local")) {
					t.Fatalf("identity config %+v", id)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestSidecarXDSTLSFlags(t *testing.T) {
	base := []string{"--ip", "127.0.0.2", "--pod-name", "p", "--namespace", "shop", "--service-account", "web"}
	ca := []string{"--ca-address", "10.0.0.1:15012", "--bootstrap-token", "/t", "--ca-root-cert", "/r"}
	for _, tc := range []struct {
		name     string
		args     []string
		wantName string // the xDS TLS server name; "" = plaintext
		wantErr  string
	}{
		{"auto: plaintext port", append([]string{"--xds-address", "10.0.0.1:15010"}, ca...), "", ""},
		{"auto: secure port", append([]string{"--xds-address", "10.0.0.1:15012"}, ca...), "10.0.0.1", ""},
		{"auto: the CA's address on another port", append([]string{"--xds-address", "127.0.0.1:4000", "--ca-address", "127.0.0.1:4000"}, ca[2:]...), "127.0.0.1", ""},
		{"auto: no CA means plaintext", []string{"--xds-address", "10.0.0.1:15012"}, "", ""},
		{"auto: CA server name reused on its host", append([]string{"--xds-address", "10.0.0.1:15012", "--ca-server-name", "istiod.istio-system.svc"}, ca...), "istiod.istio-system.svc", ""},
		{"explicit server name", append([]string{"--xds-address", "10.0.0.1:15012", "--xds-server-name", "cp.example"}, ca...), "cp.example", ""},
		{"on, on any port", append([]string{"--xds-address", "10.0.0.1:15010", "--xds-tls", "on"}, ca...), "10.0.0.1", ""},
		{"off on the secure port", append([]string{"--xds-address", "10.0.0.1:15012", "--xds-tls", "off"}, ca...), "", ""},
		{"on without a CA", []string{"--xds-address", "10.0.0.1:15012", "--xds-tls", "on"}, "", "needs --ca-address"},
		{"bad mode", append([]string{"--xds-tls", "maybe"}, ca...), "", "want auto, on or off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, err := sidecarConfigFull(t, nil, append(append([]string{}, base...), tc.args...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.XDSServerName != tc.wantName {
				t.Fatalf("XDSServerName %q, want %q", cfg.XDSServerName, tc.wantName)
			}
		})
	}
}

// TestGCConfig: the GC tuner's configuration from the flags and their
// environment variables, and no tuner with a headroom of 0.
func TestGCConfig(t *testing.T) {
	base := []string{"--ip", "127.0.0.2", "--pod-name", "p"}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		tuner    bool
		headroom uint64
		minGoal  uint64
	}{
		{"defaults", nil, nil, true, 8 << 20, 18 << 20},
		{"flags", nil, []string{"--gc-headroom-mib", "4", "--gc-min-goal-mib", "0"}, true, 4 << 20, 0},
		{"environment", map[string]string{"TRELLIS_GC_HEADROOM_MIB": "6", "TRELLIS_GC_MIN_GOAL_MIB": "32"}, nil, true, 6 << 20, 32 << 20},
		{"flag over environment", map[string]string{"TRELLIS_GC_MIN_GOAL_MIB": "32"}, []string{"--gc-min-goal-mib", "16"}, true, 8 << 20, 16 << 20},
		{"headroom 0: Go's pace", nil, []string{"--gc-headroom-mib", "0"}, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := sidecarConfig(t, tc.env, append(append([]string{}, base...), tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			cfg, ok := o.gcConfig()
			if ok != tc.tuner || cfg.Headroom != tc.headroom || cfg.MinGoal != tc.minGoal {
				t.Fatalf("gcConfig() = %+v, %v; want headroom %d MiB, min goal %d MiB, tuner %v", cfg, ok, tc.headroom>>20, tc.minGoal>>20, tc.tuner)
			}
		})
	}
}
