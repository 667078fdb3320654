package discovery

import (
	"strings"
	"testing"
)

func TestCAFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name       string
		args       []string
		secure, td string
		err        string
	}{
		{name: "defaults", args: nil, secure: ":15012"},
		{name: "disabled", args: []string{"--secure-grpc-address", "-"}, secure: ""},
		{name: "trust domain", args: []string{"--trust-domain", "example.org"}, secure: ":15012", td: "example.org"},
		{name: "bad trust domain", args: []string{"--trust-domain", "Example Org"}, err: "--trust-domain"},
		{name: "CA without a directory", args: []string{"--ca-dir", ""}, err: "--ca-dir is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TRELLIS_SECURE_GRPC_ADDRESS", ":15012")
			t.Setenv("TRELLIS_CA_DIR", ".trellis/ca")
			cmd := NewCommand(nil)
			if err := cmd.Flags().Parse(append([]string{"--config-dir", dir}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			get := func(n string) string { v, _ := cmd.Flags().GetString(n); return v }
			opts := Options{ConfigDir: get("config-dir"), SecureGRPCAddress: get("secure-grpc-address"), CADir: get("ca-dir"), TrustDomain: get("trust-domain")}
			cfg, err := opts.Config(nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.SecureGRPCAddress != tc.secure || cfg.TrustDomain != tc.td {
				t.Errorf("secure %q trust domain %q, want %q %q", cfg.SecureGRPCAddress, cfg.TrustDomain, tc.secure, tc.td)
			}
			if tc.secure != "" && cfg.CADir != ".trellis/ca" {
				t.Errorf("CA dir %q, want the default .trellis/ca", cfg.CADir)
			}
		})
	}
}
