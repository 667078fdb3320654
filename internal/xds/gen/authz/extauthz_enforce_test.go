package authz_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter/extauthz/extauthztest"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	"github.com/trellismesh/trellis/internal/xds/gen/hcmtest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

// customWorkload: httpbin with a CUSTOM policy on /admin* and the
// ext-authz service (HTTP on 8000, gRPC on 9000).
const customWorkload = services + `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: foo}
spec:
  hosts: [ext-authz.foo.svc.cluster.local]
  ports:
  - {number: 8000, name: http, protocol: HTTP}
  - {number: 9000, name: grpc, protocol: GRPC}
  resolution: DNS
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-admin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: CUSTOM
  provider: {name: authz}
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`

// customHCM generates httpbin's inbound HCM on 8000 with one provider.
func customHCM(t *testing.T, provider *meshconfig.MeshConfig_ExtensionProvider) *hcmv3.HttpConnectionManager {
	t.Helper()
	provider.Name = "authz"
	mesh := &meshconfig.MeshConfig{ExtensionProviders: []*meshconfig.MeshConfig_ExtensionProvider{provider}}
	snap := gentest.NewSnapshot(mesh, gentest.YAML(t, customWorkload))
	proxy := gentest.Proxy("10.0.0.9", "foo", map[string]string{"app": "httpbin"})
	var in *listenerv3.Listener
	for _, l := range genlistener.Build(snap.Scope(proxy)) {
		if l.GetName() == genlistener.VirtualInboundListenerName {
			in = l
		}
	}
	if in == nil {
		t.Fatal("no virtualInbound listener")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := chain(t, in, 8000).GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	return hcm
}

// TestEnforceCustom runs CUSTOM policies through the generated inbound
// chain, the real connection manager and a real ext_authz service, HTTP
// and gRPC flavours.
func TestEnforceCustom(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, marker+" "+r.URL.Path+" user="+r.Header.Get(extauthztest.UserHeader))
	}))
	t.Cleanup(backend.Close)
	httpProvider := func(timeout time.Duration, failOpen bool) *meshconfig.MeshConfig_ExtensionProvider {
		return &meshconfig.MeshConfig_ExtensionProvider{Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{
			EnvoyExtAuthzHttp: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
				Service: "ext-authz.foo.svc.cluster.local", Port: 8000, PathPrefix: "/check",
				Timeout: durationpb.New(timeout), FailOpen: failOpen,
				IncludeRequestHeadersInCheck: []string{extauthztest.Header, "x-role"},
				HeadersToUpstreamOnAllow:     []string{extauthztest.UserHeader},
				HeadersToDownstreamOnDeny:    []string{extauthztest.ReasonHdr, "content-type"},
			}}}
	}
	grpcProvider := func(timeout time.Duration, failOpen bool) *meshconfig.MeshConfig_ExtensionProvider {
		return &meshconfig.MeshConfig_ExtensionProvider{Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{
			EnvoyExtAuthzGrpc: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
				Service: "ext-authz.foo.svc.cluster.local", Port: 9000, Timeout: durationpb.New(timeout), FailOpen: failOpen,
			}}}
	}
	for _, flavour := range []struct {
		name     string
		provider func(time.Duration, bool) *meshconfig.MeshConfig_ExtensionProvider
		cluster  string
		path     string // the path the service sees for /admin/x?q=1
	}{
		{"http", httpProvider, "outbound|8000||ext-authz.foo.svc.cluster.local", "/check/admin/x?q=1"},
		{"grpc", grpcProvider, "outbound|9000||ext-authz.foo.svc.cluster.local", "/admin/x?q=1"},
	} {
		t.Run(flavour.name, func(t *testing.T) {
			srv, httpAddr, grpcAddr := extauthztest.Start(t)
			up := hcmtest.Clusters{"*": backend.Listener.Addr().String(),
				"outbound|8000||ext-authz.foo.svc.cluster.local": httpAddr,
				"outbound|9000||ext-authz.foo.svc.cluster.local": grpcAddr}
			hcm := customHCM(t, flavour.provider(2*time.Second, false))
			if n := hcm.GetHttpFilters()[1].GetName(); n != "envoy.filters.http.ext_authz" {
				t.Fatalf("second HTTP filter %q, want ext_authz", n)
			}
			addr := hcmtest.Serve(t, hcm, up, nil)

			// Not selected by the CUSTOM rule: no check.
			status, body, _ := get(t, addr, "/public", nil)
			if status != 200 || !strings.Contains(body, marker) || len(srv.Checks()) != 0 {
				t.Fatalf("/public: %d %q, %d checks; want 200 and no check", status, body, len(srv.Checks()))
			}
			// Allowed: the service sees the request and every value of a
			// repeated header (SECURITY A9); the upstream gets its header.
			status, body, _ = get(t, addr, "/admin/x?q=1", http.Header{"X-Ext-Authz": {"allow"}, "X-Role": {"user", "admin"}})
			if status != 200 || !strings.Contains(body, marker) || !strings.Contains(body, "user="+extauthztest.User) {
				t.Fatalf("allowed /admin: %d %q", status, body)
			}
			checks := srv.Checks()
			if len(checks) != 1 {
				t.Fatalf("%d checks, want 1", len(checks))
			}
			c := checks[0]
			if c.Method != "GET" || c.Path != flavour.path {
				t.Errorf("check saw %s %s, want GET %s", c.Method, c.Path, flavour.path)
			}
			if got := strings.Join(c.Header["x-role"], ","); got != "user,admin" {
				t.Errorf("check saw x-role %q, want every value (user,admin)", got)
			}
			// Denied: the service's status, headers and body.
			status, body, hdr := get(t, addr, "/admin", http.Header{"X-Role": {"admin"}})
			if status != 403 || body != extauthztest.DenyBody || hdr.Get(extauthztest.ReasonHdr) != extauthztest.Reason || strings.Contains(body, marker) {
				t.Errorf("denied /admin: %d %q %v", status, body, hdr)
			}
			// Path tricks still reach the CUSTOM rule (normalised first).
			if status, body, _ := get(t, addr, "/public/../admin", nil); status != 403 || strings.Contains(body, marker) {
				t.Errorf("/public/../admin: %d %q", status, body)
			}
		})
		t.Run(flavour.name+"/timeout", func(t *testing.T) {
			srv, httpAddr, grpcAddr := extauthztest.Start(t)
			up := hcmtest.Clusters{"*": backend.Listener.Addr().String(),
				"outbound|8000||ext-authz.foo.svc.cluster.local": httpAddr,
				"outbound|9000||ext-authz.foo.svc.cluster.local": grpcAddr}
			addr := hcmtest.Serve(t, customHCM(t, flavour.provider(100*time.Millisecond, false)), up, nil)
			status, body, _ := get(t, addr, "/admin", http.Header{"X-Ext-Authz": {"slow"}})
			srv.Release()
			if status != 403 || strings.Contains(body, marker) {
				t.Errorf("timed-out check: %d %q, want 403", status, body)
			}
		})
		for _, failOpen := range []bool{false, true} {
			name := flavour.name + "/server-down"
			want := 403
			if failOpen {
				name, want = name+"-fail-open", 200
			}
			t.Run(name, func(t *testing.T) {
				dead, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				deadAddr := dead.Addr().String()
				dead.Close()
				up := hcmtest.Clusters{"*": backend.Listener.Addr().String(), flavour.cluster: deadAddr}
				addr := hcmtest.Serve(t, customHCM(t, flavour.provider(time.Second, failOpen)), up, nil)
				status, body, _ := get(t, addr, "/admin", http.Header{"X-Ext-Authz": {"allow"}})
				if status != want || (want == 403) == strings.Contains(body, marker) {
					t.Errorf("server down, failOpen=%v: %d %q, want %d", failOpen, status, body, want)
				}
			})
		}
	}
}

func get(t *testing.T, addr, path string, h http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path
	if i := strings.Index(path, "?"); i >= 0 {
		req.URL.Opaque, req.URL.RawQuery = path[:i], path[i+1:]
	}
	req.Host = "httpbin.foo.svc.cluster.local"
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}
