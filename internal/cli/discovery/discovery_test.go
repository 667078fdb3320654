package discovery

import (
	"os"
	"path/filepath"
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

func TestKubeFlags(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeKubeconfig(t, kubeconfig)
	noPod := func(string) string { return "" }
	inPod := func(k string) string {
		if k == "KUBERNETES_SERVICE_HOST" {
			return "10.96.0.1"
		}
		return ""
	}
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		kube   bool
		host   string
		err    string
	}{
		{name: "local mode needs a directory", getenv: noPod, err: "--config-dir is required"},
		{name: "kubeconfig alone", args: []string{"--kubeconfig", kubeconfig}, getenv: noPod, kube: true, host: "https://10.1.2.3:6443"},
		{name: "kubeconfig context", args: []string{"--kubeconfig", kubeconfig, "--kube-context", "other"}, getenv: noPod, kube: true, host: "https://10.9.9.9:6443"},
		{name: "unknown context", args: []string{"--kubeconfig", kubeconfig, "--kube-context", "nope"}, getenv: noPod, err: "--kubeconfig"},
		{name: "missing kubeconfig", args: []string{"--kubeconfig", filepath.Join(dir, "absent")}, getenv: noPod, err: "--kubeconfig"},
		{name: "context without kubeconfig", args: []string{"--config-dir", dir, "--kube-context", "other"}, getenv: noPod, err: "needs --kubeconfig"},
		{name: "directory only", args: []string{"--config-dir", dir}, getenv: noPod},
		// In a Pod without a mounted token the in-cluster config fails:
		// that is reported, not silently ignored.
		{name: "pod without a service account", args: []string{"--config-dir", dir}, getenv: inPod, err: "running in a Pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", "")
			t.Setenv("POD_NAMESPACE", "mesh-system")
			cmd := NewCommand(nil)
			if err := cmd.Flags().Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			get := func(n string) string { v, _ := cmd.Flags().GetString(n); return v }
			opts := Options{
				ConfigDir: get("config-dir"), SecureGRPCAddress: "-", XDSAddress: ":15010",
				Kubeconfig: get("kubeconfig"), KubeContext: get("kube-context"), SystemNamespace: get("system-namespace"),
			}
			cfg, err := opts.config(nil, tc.getenv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.Kube != nil) != tc.kube {
				t.Fatalf("cluster client %v, want one: %v", cfg.Kube, tc.kube)
			}
			if tc.kube && cfg.Kube.Config.Host != tc.host {
				t.Errorf("cluster %s, want %s", cfg.Kube.Config.Host, tc.host)
			}
			if cfg.SystemNamespace != "mesh-system" {
				t.Errorf("system namespace %q, want mesh-system from POD_NAMESPACE", cfg.SystemNamespace)
			}
		})
	}
}

func writeKubeconfig(t *testing.T, path string) {
	t.Helper()
	const kc = `apiVersion: v1
kind: Config
clusters:
- name: main
  cluster: {server: "https://10.1.2.3:6443"}
- name: other
  cluster: {server: "https://10.9.9.9:6443"}
users:
- name: admin
  user: {token: secret}
contexts:
- name: main
  context: {cluster: main, user: admin}
- name: other
  context: {cluster: other, user: admin}
current-context: main
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
}
