package mtls

import (
	"slices"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

func TestExpandTrustDomains(t *testing.T) {
	cases := []struct {
		name         string
		ids, aliases []string
		want         []string
	}{
		{name: "none", want: nil},
		{name: "no aliases", ids: []string{"spiffe://td/ns/a/sa/x"}, want: []string{"spiffe://td/ns/a/sa/x"}},
		{
			name: "each alias", ids: []string{"spiffe://td1/ns/def/sa/b", "spiffe://td1/ns/def/sa/a"}, aliases: []string{"td2", "td1", ""},
			want: []string{"spiffe://td1/ns/def/sa/a", "spiffe://td1/ns/def/sa/b", "spiffe://td2/ns/def/sa/a", "spiffe://td2/ns/def/sa/b"},
		},
		{
			name: "non-SPIFFE-workload names kept as they are", ids: []string{"api.example.com", "spiffe://td/custom/path"}, aliases: []string{"td2"},
			want: []string{"api.example.com", "spiffe://td/custom/path"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExpandTrustDomains(tc.ids, tc.aliases); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrustDomains(t *testing.T) {
	if got := TrustDomains(nil); !slices.Equal(got, []string{"cluster.local"}) {
		t.Errorf("default: %q", got)
	}
	m := &meshconfig.MeshConfig{TrustDomain: "a", TrustDomainAliases: []string{"b", "a", "", "c", "b"}}
	if got := TrustDomains(m); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("got %q", got)
	}
}

// TestSecretConfig: istiod's form, valid by Envoy's rules; only the
// workload's own secrets wait without a timeout.
func TestSecretConfig(t *testing.T) {
	for _, name := range []string{SecretDefault, SecretRootCA, FileCertSecret("/c.pem", "/k.pem"), FileRootSecret("system"), CredentialSecret("db")} {
		c := SecretConfig(name)
		if err := c.ValidateAll(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		api := c.GetSdsConfig().GetApiConfigSource()
		if api.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != SDSCluster || !api.GetSetNodeOnFirstMessageOnly() {
			t.Errorf("%s: source %v", name, api)
		}
		wait := c.GetSdsConfig().GetInitialFetchTimeout() != nil
		if wait != (name == SecretDefault || name == SecretRootCA) {
			t.Errorf("%s: initial_fetch_timeout set = %v", name, wait)
		}
	}
	if got := CredentialSecret("configmap://ns/ca"); got != "configmap://ns/ca" {
		t.Errorf("scheme kept: %q", got)
	}
	if got := CredentialSecret("db"); got != "kubernetes://db" {
		t.Errorf("default scheme: %q", got)
	}
}

func TestSANMatchers(t *testing.T) {
	got := SANMatchers([]string{"spiffe://td/ns/a/sa/b", "192.0.2.1", "api.example.com"})
	want := []tlsv3.SubjectAltNameMatcher_SanType{tlsv3.SubjectAltNameMatcher_URI, tlsv3.SubjectAltNameMatcher_IP_ADDRESS, tlsv3.SubjectAltNameMatcher_DNS}
	for i, m := range got {
		if m.GetSanType() != want[i] || m.GetMatcher().GetExact() == "" {
			t.Errorf("%d: %v", i, m)
		}
	}
	if SANMatchers(nil) != nil {
		t.Error("nil names give matchers")
	}
	for _, m := range TrustDomainMatchers([]string{"td"}) {
		if m.GetMatcher().GetPrefix() != "spiffe://td/" || m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
			t.Errorf("trust domain matcher %v", m)
		}
	}
}

func TestMinProtocolVersion(t *testing.T) {
	if MinProtocolVersion(nil) != tlsv3.TlsParameters_TLSv1_2 {
		t.Error("default not TLS 1.2")
	}
	m := &meshconfig.MeshConfig{MeshMTLS: &meshconfig.MeshConfig_TLSConfig{MinProtocolVersion: meshconfig.MeshConfig_TLSConfig_TLSV1_3}}
	if MinProtocolVersion(m) != tlsv3.TlsParameters_TLSv1_3 {
		t.Error("meshMTLS 1.3 ignored")
	}
}
