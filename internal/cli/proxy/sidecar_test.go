package proxy

import (
	"strings"
	"testing"
)

// sidecarConfig parses args like the command does and builds the config.
func sidecarConfig(t *testing.T, env map[string]string, args ...string) (sidecarOptions, error) {
	t.Helper()
	d := deps{getenv: func(k string) string { return env[k] }}
	cmd := newSidecarCommand(d)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	var o sidecarOptions
	// Re-read the parsed values through the flag set.
	f := cmd.Flags()
	for name, dst := range map[string]*string{
		"ip": &o.ip, "pod-name": &o.podName, "namespace": &o.namespace, "service-account": &o.serviceAccount,
		"ca-address": &o.caAddress, "ca-root-cert": &o.caRootCert, "bootstrap-token": &o.bootstrapToken, "trust-domain": &o.trustDomain,
	} {
		v, err := f.GetString(name)
		if err != nil {
			t.Fatal(err)
		}
		*dst = v
	}
	_, err := o.config(d)
	return o, err
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
