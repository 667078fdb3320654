package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/identity"
)

// TestSidecarCertTTLFlags: --cert-ttl and --root-check-interval reach the
// identity manager's configuration; negative values are refused by name.
func TestSidecarCertTTLFlags(t *testing.T) {
	base := []string{"--ip", "127.0.0.2", "--pod-name", "p", "--namespace", "shop", "--service-account", "web",
		"--ca-address", "127.0.0.1:15012", "--bootstrap-token", "/t", "--ca-root-cert", "/r"}
	for _, tc := range []struct {
		name      string
		args      []string
		ttl, root time.Duration
		want      string // error substring; "" = valid
	}{
		{"defaults", nil, 0, identity.DefaultRootCheckInterval, ""},
		{"short lifetime", []string{"--cert-ttl", "20s", "--root-check-interval", "500ms"}, 20 * time.Second, 500 * time.Millisecond, ""},
		{"negative lifetime", []string{"--cert-ttl", "-1s"}, 0, 0, "--cert-ttl"},
		{"negative interval", []string{"--root-check-interval", "-1s"}, 0, 0, "--root-check-interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deps{getenv: func(string) string { return "" }}
			cmd := newSidecarCommand(d)
			if err := cmd.ParseFlags(append(append([]string{}, base...), tc.args...)); err != nil {
				t.Fatal(err)
			}
			o := sidecarOptions{}
			f := cmd.Flags()
			for name, dst := range map[string]*string{
				"ip": &o.ip, "pod-name": &o.podName, "namespace": &o.namespace, "service-account": &o.serviceAccount,
				"ca-address": &o.caAddress, "ca-root-cert": &o.caRootCert, "bootstrap-token": &o.bootstrapToken,
				"trust-domain": &o.trustDomain, "xds-address": &o.xdsAddress, "xds-tls": &o.xdsTLS,
			} {
				v, err := f.GetString(name)
				if err != nil {
					t.Fatal(err)
				}
				*dst = v
			}
			var err error
			if o.certTTL, err = f.GetDuration("cert-ttl"); err != nil {
				t.Fatal(err)
			}
			if o.rootCheck, err = f.GetDuration("root-check-interval"); err != nil {
				t.Fatal(err)
			}
			cfg, err := o.config(d)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want one naming %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Identity.TTL != tc.ttl || cfg.Identity.RootCheckInterval != tc.root {
				t.Fatalf("identity TTL %s, root check %s; want %s, %s", cfg.Identity.TTL, cfg.Identity.RootCheckInterval, tc.ttl, tc.root)
			}
		})
	}
}
