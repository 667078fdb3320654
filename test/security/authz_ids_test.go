//go:build linux

package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/authz"
	"github.com/trellismesh/trellis/test/framework"
)

// caServerName is a name of the control plane CA's serving certificate.
const caServerName = "istiod.istio-system.svc"

// idsPolicy is the setup of A10 and A12 on a PERMISSIVE workload:
//
//	ALLOW /public* for anyone; /a10* only for principal cluster.local/ns/a/sa/b (A10);
//	      /a12-allow* only when source.serviceAccount … (a when key the
//	      generators do not translate: the rule must never allow)
//	DENY  /a12-deny* when source.serviceAccount … or
//	      request.experimental.inline.headers[x-a12] … (same keys: the rule must
//	      still deny, without the condition it cannot check)
const idsPolicy = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: PERMISSIVE
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-ids
  namespace: default
spec:
  selector:
    matchLabels:
      app: secure
  action: ALLOW
  rules:
  - to:
    - operation:
        paths: ["/public*"]
  - from:
    - source:
        principals: ["cluster.local/ns/a/sa/b"]
    to:
    - operation:
        paths: ["/a10*"]
  - to:
    - operation:
        paths: ["/a12-allow*"]
    when:
    - key: source.serviceAccount
      values: ["a/b"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-a12
  namespace: default
spec:
  selector:
    matchLabels:
      app: secure
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/a12-deny*"]
    when:
    - key: source.serviceAccount
      values: ["a/b"]
  - to:
    - operation:
        paths: ["/a12-header*"]
    when:
    - key: request.experimental.inline.headers[x-a12]
      values: ["yes"]
`

// TestAuthzIDs runs SECURITY.md A10 and A12 through the sidecar, whose
// mesh identity comes from the control plane's CA: callers present client
// certificates the test signs with the mesh CA (ALPN istio-http/1.1 or
// istio-h2 select the mTLS filter chain of the PERMISSIVE port).
func TestAuthzIDs(t *testing.T) {
	w := newWorld(t)
	m := startMeshWith(t, w, meshOptions{
		cp: framework.ControlPlaneOptions{SecureAddress: "127.0.0.1:0"},
		identity: func(cp *framework.ControlPlane) identity.Config {
			_, tokenFile, err := bootstrap.Mint(filepath.Join(cp.CADir, "bootstrap"), "default", "secure")
			if err != nil {
				t.Fatal(err)
			}
			return identity.Config{
				CAAddress: cp.SecureGRPCAddr().String(), ServerName: caServerName,
				RootCertFile: filepath.Join(cp.CADir, ca.RootFile), TokenFile: tokenFile,
				TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "secure",
			}
		},
	}, idsPolicy)
	is, err := ca.LoadDir(m.cp.CADir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	peer := func(id string) *tls.Certificate {
		c := meshCert(t, is.Cert, is.Key, "spiffe://"+id)
		return &c
	}
	b, bb, bx := peer("cluster.local/ns/a/sa/b"), peer("cluster.local/ns/a/sa/bb"), peer("cluster.local/ns/a/sa/b.x")
	m.waitMTLS(t, b, "/a10")

	t.Run("A10_ExactPrincipal", func(t *testing.T) {
		m.runIDs(t, []idAttack{
			{"sa/b (the allowed principal)", b, "/a10", forwarded},
			{"sa/bb", bb, "/a10", 403},
			{"sa/b.x", bx, "/a10", 403},
			{"sa/b/x", peer("cluster.local/ns/a/sa/b/x"), "/a10", 403},
			{"ns/a/sa/B", peer("cluster.local/ns/a/sa/B"), "/a10", 403},
			{"sa/b in namespace ab", peer("cluster.local/ns/ab/sa/b"), "/a10", 403},
			{"no peer certificate (plaintext)", nil, "/a10", 403},
			{"sa/bb on public", bb, "/public", 200},
		})
	})
	t.Run("A12_UnknownField", func(t *testing.T) {
		m.runIDs(t, []idAttack{
			{"ALLOW rule with an untranslatable when, from sa/b", b, "/a12-allow", 403},
			{"ALLOW rule with an untranslatable when, plaintext", nil, "/a12-allow", 403},
			{"DENY rule with an untranslatable when, from sa/b", b, "/a12-deny", 403},
			{"DENY rule with an untranslatable when, from sa/bb", bb, "/a12-deny", 403},
			{"DENY rule with an untranslatable when, plaintext", nil, "/a12-deny", 403},
			{"DENY rule on an untranslatable header key", nil, "/a12-header", 403},
			{"other paths keep their rules", b, "/public", 200},
		})
	})
	m.waitPolicy(t, "/public", 200)
	m.checkLogs(t)
}

// TestAuthzIDsGenerated is A12 on the generated configuration: the
// untranslatable when key makes the ALLOW rule absent (never allows) and
// the DENY rule present without the condition (denies its paths
// whatever the condition would have said); nothing is allow-all.
func TestAuthzIDsGenerated(t *testing.T) {
	policy := func(name string, action security.AuthorizationPolicy_Action, path string) config.Config {
		return config.Config{
			Meta: config.Meta{Kind: schema.AuthorizationPolicy, Namespace: "default", Name: name},
			Spec: &security.AuthorizationPolicy{
				Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "secure"}},
				Action:   action,
				Rules: []*security.Rule{{
					To:   []*security.Rule_To{{Operation: &security.Operation{Paths: []string{path}}}},
					When: []*security.Condition{{Key: "source.serviceAccount", Values: []string{"a/b"}}},
				}},
			},
		}
	}
	f := authz.Build(model.AuthzPolicies{
		Deny:  []config.Config{policy("deny-a12", security.AuthorizationPolicy_DENY, "/a12-deny*")},
		Allow: []config.Config{policy("allow-a12", security.AuthorizationPolicy_ALLOW, "/a12-allow*")},
	}, authz.Options{TrustDomains: []string{"cluster.local"}})
	rules := map[rbacv3.RBAC_Action]*rbacv3.RBAC{}
	for _, hf := range f.HTTP {
		var r rbachttp.RBAC
		if err := hf.GetTypedConfig().UnmarshalTo(&r); err != nil {
			t.Fatal(err)
		}
		if r.GetRules() != nil {
			rules[r.GetRules().GetAction()] = r.GetRules()
		}
	}
	deny, allow := rules[rbacv3.RBAC_DENY], rules[rbacv3.RBAC_ALLOW]
	if deny == nil || allow == nil {
		t.Fatalf("want a DENY and an ALLOW RBAC filter, got %v (warnings %q)", rules, f.Warnings)
	}
	if len(allow.GetPolicies()) != 0 {
		t.Errorf("ALLOW rule with an untranslatable when key was generated: %v", allow.GetPolicies())
	}
	p := deny.GetPolicies()["ns[default]-policy[deny-a12]-rule[0]"]
	if p == nil {
		t.Fatalf("DENY rule with an untranslatable when key was dropped: %v (warnings %q)", deny.GetPolicies(), f.Warnings)
	}
	if s := p.String(); !strings.Contains(s, "/a12-deny") || strings.Contains(s, "a/b") {
		t.Errorf("DENY rule: want its path and not the untranslatable condition, got %s", s)
	}
}

// idAttack is one request from a caller identity (nil: plaintext).
type idAttack struct {
	what string
	cert *tls.Certificate
	path string
	want int // a status, or forwarded
}

// forwarded: the sidecar let the request through: the backend logged it,
// whatever it answered (Apache has no /a10 page: 404).
const forwarded = -1

func (m *mesh) runIDs(t *testing.T, attacks []idAttack) {
	for _, proto := range protocols {
		for _, b := range m.backends {
			t.Run(proto+"/"+b.name, func(t *testing.T) {
				for _, a := range attacks {
					m.seq++
					id := fmt.Sprintf("%d", m.seq)
					req := request{method: "GET", authority: "secure", path: a.path, headers: [][2]string{{"x-case", id}}}
					r := m.sendAs(t, proto, b, a.cert, req)
					if a.want == forwarded {
						if r.status == 0 || r.status == 403 {
							t.Errorf("%s %s: %v, want it forwarded", a.what, a.path, r)
						}
						framework.Eventually(t, 5*time.Second, func() error {
							if len(saw(b, id)) == 0 {
								return fmt.Errorf("%s %s: %s never logged the request", a.what, a.path, b.name)
							}
							return nil
						})
					} else if r.status != a.want {
						t.Errorf("%s %s: %v, want %d", a.what, a.path, r, a.want)
					}
					if strings.Contains(r.body, m.marker) {
						t.Errorf("%s %s: the marker came back", a.what, a.path)
					}
					if a.want == 403 {
						if seen := saw(b, id); len(seen) > 0 {
							t.Errorf("%s %s: %s saw the request: %q", a.what, a.path, b.name, seen)
						}
						m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: a.what + " " + a.path})
					}
				}
			})
		}
	}
}

// sendAs sends req to b through the sidecar, over mutual TLS with cert
// when set (the mesh's ALPN for proto), in plaintext otherwise.
func (m *mesh) sendAs(t *testing.T, proto string, b *backend, cert *tls.Certificate, req request) result {
	t.Helper()
	if cert == nil {
		if proto == "http1" {
			return h1(t, b.src, m.inbound, req.h1Raw())
		}
		return h2(t, b.src, m.inbound, req)
	}
	alpn := []string{"istio-http/1.1", "istio", "http/1.1"}
	if proto == "http2" {
		alpn = []string{"istio-h2", "istio", "h2"}
	}
	raw := dial(t, b.src, m.inbound)
	c := tls.Client(raw, &tls.Config{
		Certificates: []tls.Certificate{*cert},
		// The server's identity is not what A10 is about.
		InsecureSkipVerify: true,
		NextProtos:         alpn,
	})
	if err := c.Handshake(); err != nil {
		raw.Close()
		return result{how: "handshake: " + err.Error()}
	}
	if proto == "http1" {
		return h1On(c, req.h1Raw())
	}
	return h2On(c, req)
}

// waitMTLS polls path as cert until no backend's answer is refused by the
// sidecar (403, or a failed handshake): it has its certificate and the
// policy.
func (m *mesh) waitMTLS(t *testing.T, cert *tls.Certificate, path string) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, func() error {
		for _, b := range m.backends {
			r := m.sendAs(t, "http1", b, cert, request{method: "GET", authority: "secure", path: path})
			if r.status == 0 || r.status == 403 {
				return fmt.Errorf("%s: %v, want it forwarded", b.name, r)
			}
		}
		return nil
	})
}

// meshCert is a workload certificate for the SPIFFE id, signed by the
// mesh CA (what the CA would issue to that workload).
func meshCert(t *testing.T, parent *x509.Certificate, parentKey any, id string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
