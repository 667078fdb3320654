package authz_test

import (
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/xds/gen/authz"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// Extension providers in the shapes of Istio's mesh config documentation.
func extProviders() []*meshconfig.MeshConfig_ExtensionProvider {
	return []*meshconfig.MeshConfig_ExtensionProvider{
		{Name: "opa", Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{
			EnvoyExtAuthzHttp: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
				Service: "ext-authz.foo.svc.cluster.local", Port: 8000,
				PathPrefix: "/check", StatusOnError: "503", FailOpen: false,
				Timeout:                         durationpb.New(2e9),
				IncludeRequestHeadersInCheck:    []string{"x-ext-authz", "x-role", "x-b3-*", "*-id"},
				IncludeAdditionalHeadersInCheck: map[string]string{"x-from-proxy": "trellis", "x-a": "1"},
				HeadersToUpstreamOnAllow:        []string{"x-authz-user"},
				HeadersToDownstreamOnDeny:       []string{"x-authz-reason", "content-type"},
				HeadersToDownstreamOnAllow:      []string{"set-cookie"},
				IncludeRequestBodyInCheck: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody{
					MaxRequestBytes: 1024, AllowPartialMessage: true,
				},
			}}},
		{Name: "opa-grpc", Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{
			EnvoyExtAuthzGrpc: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
				Service: "foo/ext-authz.foo.svc.cluster.local", Port: 9000, FailOpen: true,
			}}},
		{Name: "bad-wildcard", Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{
			EnvoyExtAuthzHttp: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
				Service: "ext-authz.foo.svc.cluster.local", Port: 8000, IncludeRequestHeadersInCheck: []string{"*"},
			}}},
		{Name: "missing-service", Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{
			EnvoyExtAuthzGrpc: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
				Service: "nowhere.foo.svc.cluster.local", Port: 9000,
			}}},
	}
}

// lookup knows ext-authz.foo.svc.cluster.local on 8000 and 9000.
func lookup(service string, port uint32) (string, string, bool) {
	host := service[strings.Index(service, "/")+1:]
	if host != "ext-authz.foo.svc.cluster.local" || (port != 8000 && port != 9000) {
		return "", "", false
	}
	return "outbound|" + map[uint32]string{8000: "8000", 9000: "9000"}[port] + "||" + host, host, true
}

func customOpts() authz.Options {
	return authz.Options{TrustDomains: []string{"cluster.local"}, ExtensionProviders: extProviders(), LookupCluster: lookup}
}

func customPolicy(provider string) string {
	return `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-` + provider + `, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: ` + provider + `}
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`
}

// customTCPPolicy sends connections to port 7000 from 10.0.0.0/8 to the
// gRPC provider.
const customTCPPolicy = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-tcp, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: opa-grpc}
  rules:
  - from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {ports: ["7000"]}}]
`

func TestCustomGolden(t *testing.T) {
	cases := []struct {
		name, yaml string
		// httpFilters and tcpFilters are the expected filter names.
		custom, http, tcp string
		warn              string
	}{
		{"custom-http", customPolicy("opa") + "---" + denyAll,
			"envoy.filters.http.rbac envoy.filters.http.ext_authz", "envoy.filters.http.rbac", "envoy.filters.network.rbac", ""},
		// A gRPC provider also checks TCP chains: the network shadow RBAC
		// and ext_authz (the path rule, HTTP only, selects every
		// connection: the field is dropped as in Istio's DENY translation).
		{"custom-grpc", customPolicy("opa-grpc"),
			"envoy.filters.http.rbac envoy.filters.http.ext_authz", "", "envoy.filters.network.rbac envoy.filters.network.ext_authz", ""},
		// CUSTOM comes first on TCP chains, then the other actions.
		{"custom-grpc-tcp", customTCPPolicy + "---" + denyAll,
			"envoy.filters.http.rbac envoy.filters.http.ext_authz", "envoy.filters.http.rbac",
			"envoy.filters.network.rbac envoy.filters.network.ext_authz envoy.filters.network.rbac", ""},
		{"custom-unknown-provider", customPolicy("nope"), "", "envoy.filters.http.rbac", "envoy.filters.network.rbac", `"nope" is not declared`},
		{"custom-bad-provider", customPolicy("bad-wildcard"), "", "envoy.filters.http.rbac", "envoy.filters.network.rbac", "single wildcard"},
		{"custom-missing-service", customPolicy("missing-service"), "", "envoy.filters.http.rbac", "envoy.filters.network.rbac", "not found"},
		{"custom-two-providers", customPolicy("opa") + "---" + customPolicy("opa-grpc"), "", "envoy.filters.http.rbac", "envoy.filters.network.rbac", "one provider"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := build(t, tc.yaml, customOpts())
			var msgs []proto.Message
			names := func(hs []*hcmv3.HttpFilter) string {
				var out []string
				for _, h := range hs {
					out = append(out, h.GetName())
					msgs = append(msgs, h)
				}
				return strings.Join(out, " ")
			}
			if got := names(f.CustomHTTP); got != tc.custom {
				t.Errorf("CUSTOM HTTP filters %q, want %q", got, tc.custom)
			}
			if got := names(f.HTTP); got != tc.http {
				t.Errorf("HTTP filters %q, want %q", got, tc.http)
			}
			var tcp []string
			for _, l := range f.TCP {
				tcp = append(tcp, l.GetName())
				msgs = append(msgs, l)
			}
			if got := strings.Join(tcp, " "); got != tc.tcp {
				t.Errorf("TCP filters %q, want %q", got, tc.tcp)
			}
			w := strings.Join(f.Warnings, "\n")
			if (tc.warn == "") != (w == "") || !strings.Contains(w, tc.warn) {
				t.Errorf("warnings %q, want one containing %q", w, tc.warn)
			}
			for _, m := range msgs {
				gentest.Validate(t, m)
			}
			gentest.Golden(t, tc.name, msgs...)
		})
	}
}
