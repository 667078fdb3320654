package authz_test

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/authz"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// Policies in the shapes of Istio's AuthorizationPolicy documentation.
const allFields = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/sleep, "*-suffix", "prefix-*", "*"]
        notPrincipals: [cluster.local/ns/x/sa/y]
        requestPrincipals: [https://issuer.example.com/alice, "*"]
        namespaces: [test, "team-*"]
        notNamespaces: [blocked]
        ipBlocks: [10.1.0.0/16, 10.2.3.4]
        notIpBlocks: [10.1.9.0/24]
        remoteIpBlocks: [192.0.2.0/24]
    to:
    - operation:
        hosts: [httpbin.example.com, "*.example.org"]
        notHosts: [evil.example.com]
        methods: [GET, POST]
        notMethods: [DELETE]
        paths: [/info*, /data, "*/suffix", "/api/{*}/items/{**}"]
        notPaths: [/admin*]
        ports: ["8000"]
        notPorts: ["9999"]
    when:
    - key: request.headers[x-tenant]
      values: [acme]
      notValues: [evil]
    - key: request.auth.claims[groups]
      values: [admin]
    - key: request.auth.claims[nested][role]
      values: [ops]
    - key: request.auth.audiences
      values: [api]
    - key: request.auth.presenter
      values: [web]
    - key: source.ip
      values: [10.0.0.0/8]
    - key: remote.ip
      values: [203.0.113.7]
    - key: source.namespace
      values: [foo]
    - key: source.principal
      values: [cluster.local/ns/foo/sa/bar]
    - key: destination.ip
      values: [10.0.0.9]
    - key: destination.port
      values: ["8000"]
    - key: connection.sni
      values: [httpbin.foo.svc.cluster.local]
    - key: experimental.envoy.filters.network.mysql_proxy[db.table]
      values: ["[update]"]
`

const denyAdmin = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"], methods: [GET]}}]
    from: [{source: {namespaces: [untrusted]}}]
`

const denyAll = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: foo}
spec:
  action: DENY
  rules: [{}]
`

const allowNothing = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: foo}
spec: {}
`

const dryRun = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry
  namespace: foo
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
`

const audit = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: foo}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: [/audit]}}]}]
`

const custom = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: [/ext*]}}]}]
`

const meshWide = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules: [{from: [{source: {notPrincipals: ["cluster.local/*"]}}], to: [{operation: {ports: ["15000"]}}]}]
`

const targetRef = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: for-gateway, namespace: foo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]
  action: DENY
  rules: [{}]
`

const otherWorkload = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other, namespace: foo}
spec:
  selector: {matchLabels: {app: other}}
  action: DENY
  rules: [{}]
`

var httpbinLabels = map[string]string{"app": "httpbin", "version": "v1"}

func build(t *testing.T, yamlText string, opts authz.Options) authz.Filters {
	t.Helper()
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, yamlText))
	return authz.Build(snap.AuthorizationPolicies("foo", httpbinLabels), opts)
}

func TestGolden(t *testing.T) {
	td := authz.Options{TrustDomains: []string{"cluster.local"}}
	cases := []struct {
		name string
		yaml string
		opts authz.Options
	}{
		{"all-fields", allFields, td},
		{"all-fields-aliases", allFields, authz.Options{TrustDomains: []string{"td1", "cluster.local", "old-td"}}},
		{"deny-and-allow", denyAdmin + "---" + allFields, td},
		{"deny-all", denyAll, td},
		{"allow-nothing", allowNothing, td},
		{"dry-run-audit", dryRun + "---" + audit, td},
		{"custom-unavailable", custom, td},
		{"mesh-wide-and-ignored", meshWide + "---" + targetRef + "---" + otherWorkload, td},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := build(t, tc.yaml, tc.opts)
			var msgs []proto.Message
			for _, h := range f.HTTP {
				msgs = append(msgs, h)
			}
			for _, l := range f.TCP {
				msgs = append(msgs, l)
			}
			for _, m := range msgs {
				gentest.Validate(t, m)
			}
			gentest.Golden(t, tc.name, msgs...)
		})
	}
}

func httpRBAC(t *testing.T, f authz.Filters) []*rbachttpv3.RBAC {
	var out []*rbachttpv3.RBAC
	for _, h := range f.HTTP {
		r := &rbachttpv3.RBAC{}
		if err := h.GetTypedConfig().UnmarshalTo(r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func tcpRBAC(t *testing.T, fs []*listenerv3.Filter) []*rbactcpv3.RBAC {
	var out []*rbactcpv3.RBAC
	for _, f := range fs {
		r := &rbactcpv3.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestOrderAndActions(t *testing.T) {
	f := build(t, custom+"---"+audit+"---"+denyAdmin+"---"+allFields, authz.Options{TrustDomains: []string{"cluster.local"}})
	var got []string
	for _, r := range httpRBAC(t, f) {
		got = append(got, r.GetRules().GetAction().String())
	}
	if want := "DENY LOG DENY ALLOW"; strings.Join(got, " ") != want {
		t.Errorf("HTTP filter actions %v, want %s (CUSTOM, AUDIT, DENY, ALLOW)", got, want)
	}
	if len(f.Warnings) == 0 || !strings.Contains(strings.Join(f.Warnings, "\n"), "CUSTOM") {
		t.Errorf("no warning for the unsupported CUSTOM provider: %q", f.Warnings)
	}
}

// TestTCPRules: an ALLOW rule with HTTP-only fields is dropped on TCP
// chains; a DENY rule keeps denying with those fields removed.
func TestTCPRules(t *testing.T) {
	td := authz.Options{TrustDomains: []string{"cluster.local"}}
	f := build(t, denyAdmin+"---"+allFields, td)
	rs := tcpRBAC(t, f.TCP)
	if len(rs) != 2 {
		t.Fatalf("%d TCP filters, want 2", len(rs))
	}
	deny, allow := rs[0].GetRules(), rs[1].GetRules()
	if deny.GetAction() != rbacv3.RBAC_DENY || len(deny.GetPolicies()) != 1 {
		t.Fatalf("deny: %v", deny)
	}
	p := deny.GetPolicies()["ns[foo]-policy[deny-admin]-rule[0]"]
	perm := p.GetPermissions()[0].GetAndRules().GetRules()
	if len(perm) != 1 || !perm[0].GetAny() {
		t.Errorf("DENY permissions on TCP %v, want the HTTP-only paths and methods dropped (any)", perm)
	}
	if allow.GetAction() != rbacv3.RBAC_ALLOW || len(allow.GetPolicies()) != 0 {
		t.Errorf("ALLOW on TCP %v, want the HTTP rule dropped (no policies: deny)", allow)
	}
	if rs[0].GetStatPrefix() != "tcp." {
		t.Errorf("stat_prefix %q", rs[0].GetStatPrefix())
	}
}

func TestSelection(t *testing.T) {
	cfgs := gentest.YAML(t, meshWide+"---"+targetRef+"---"+otherWorkload+"---"+denyAll+"---"+allFields)
	snap := gentest.NewSnapshot(nil, cfgs)
	names := func(p model.AuthzPolicies) string {
		var out []string
		for _, l := range [][]config.Config{p.Custom, p.Deny, p.Allow, p.Audit} {
			for _, c := range l {
				out = append(out, c.Namespace+"/"+c.Name)
			}
		}
		return strings.Join(out, " ")
	}
	if got, want := names(snap.AuthorizationPolicies("foo", httpbinLabels)), "istio-system/mesh-deny foo/deny-all foo/httpbin"; got != want {
		t.Errorf("httpbin in foo: %s, want %s", got, want)
	}
	if got, want := names(snap.AuthorizationPolicies("bar", httpbinLabels)), "istio-system/mesh-deny"; got != want {
		t.Errorf("httpbin in bar: %s, want %s", got, want)
	}
}
