package authz_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
	rbacnet "github.com/trellismesh/trellis/internal/dataplane/rbac/network"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	"github.com/trellismesh/trellis/internal/xds/gen/hcmtest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

// workload: httpbin in foo serving HTTP on 8000 and TCP on 9000, with the
// policies of the enforcement tests.
const workload = services + allowPublic + `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin-role, namespace: foo}
spec:
  action: DENY
  rules:
  - when: [{key: "request.headers[x-role]", values: [admin]}]
  - from: [{source: {ipBlocks: [10.66.0.0/16]}}]
`

// workloadTCP has no DENY rule on an HTTP attribute (on TCP chains such a
// rule would deny every connection).
const workloadTCP = services + allowPublic + `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-block, namespace: foo}
spec:
  action: DENY
  rules:
  - from: [{source: {ipBlocks: [10.66.0.0/16]}}]
`

const services = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  ports:
  - {number: 8000, name: http, protocol: HTTP}
  - {number: 9000, name: tcp, protocol: TCP}
  resolution: STATIC
  workloadSelector: {labels: {app: httpbin}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-1, namespace: foo}
spec: {address: 10.0.0.9, labels: {app: httpbin}, serviceAccount: httpbin}
`

const allowPublic = `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-public, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - to: [{operation: {methods: [GET], paths: ["/public*"]}}]
  - from: [{source: {namespaces: [trusted]}}]
`

// inbound returns the generated virtualInbound listener of httpbin.
func inbound(t *testing.T, yamlText string) *listenerv3.Listener {
	t.Helper()
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, yamlText))
	proxy := gentest.Proxy("10.0.0.9", "foo", map[string]string{"app": "httpbin"})
	proxy.ServiceAccount = "httpbin"
	for _, l := range genlistener.Build(snap.Scope(proxy)) {
		if l.GetName() == genlistener.VirtualInboundListenerName {
			return l
		}
	}
	t.Fatal("no virtualInbound listener")
	return nil
}

// chain returns the plaintext filter chain of a port.
func chain(t *testing.T, l *listenerv3.Listener, port uint32) *listenerv3.FilterChain {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		if m.GetDestinationPort().GetValue() == port && m.GetTransportProtocol() == "raw_buffer" {
			return fc
		}
	}
	t.Fatalf("no raw_buffer chain for port %d", port)
	return nil
}

const marker = "SECRET-MARKER"

// TestEnforceHTTP runs the generated inbound HTTP chain through the real
// connection manager: ALLOW by method and path, ALLOW by the mTLS peer's
// namespace, DENY by header.
func TestEnforceHTTP(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, marker+" "+r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	hcm := &hcmv3.HttpConnectionManager{}
	if err := chain(t, inbound(t, workload), 8000).GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if hcm.GetHttpFilters()[0].GetName() != "envoy.filters.http.rbac" {
		t.Fatalf("first HTTP filter %q, want the RBAC filter", hcm.GetHttpFilters()[0].GetName())
	}
	plain := hcmtest.Serve(t, hcm, hcmtest.Clusters{"*": backend.Listener.Addr().String()}, nil)
	trusted := hcmtest.Serve(t, hcm, hcmtest.Clusters{"*": backend.Listener.Addr().String()}, func(c *listener.Conn) {
		c.MutualTLS, c.PeerIdentity = true, "spiffe://cluster.local/ns/trusted/sa/client"
	})
	other := hcmtest.Serve(t, hcm, hcmtest.Clusters{"*": backend.Listener.Addr().String()}, func(c *listener.Conn) {
		c.MutualTLS, c.PeerIdentity = true, "spiffe://cluster.local/ns/untrusted/sa/trusted"
	})
	cases := []struct {
		name, addr, method, path string
		header                   http.Header
		status                   int
	}{
		{"allowed path", plain, "GET", "/public/page", nil, 200},
		{"normalised path still allowed", plain, "GET", "/public/../public/x", nil, 200},
		{"wrong method", plain, "POST", "/public/page", nil, 403},
		{"other path", plain, "GET", "/admin", nil, 403},
		{"dot segments to admin", plain, "GET", "/public/../admin", nil, 403},
		{"namespace from peer identity", trusted, "POST", "/admin", nil, 200},
		{"other namespace", other, "POST", "/admin", nil, 403},
		{"deny header", trusted, "GET", "/public/page", http.Header{"X-Role": {"admin"}}, 403},
		{"deny header other case", trusted, "GET", "/public/page", http.Header{"x-role": {"admin"}}, 403},
		{"other header value", trusted, "GET", "/public/page", http.Header{"X-Role": {"user"}}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://"+tc.addr+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tc.path // send the path as written
			req.Host = "httpbin.foo.svc.cluster.local"
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == 403 {
				if strings.Contains(string(body), marker) || string(body) != "RBAC: access denied" {
					t.Errorf("denied body %q", body)
				}
			} else if !strings.Contains(string(body), marker) {
				t.Errorf("allowed body %q", body)
			}
		})
	}
}

// TestEnforceTCP runs the generated inbound TCP chain's RBAC filter in
// front of a terminal handler: of the ALLOW policy only its namespace rule
// survives (the method/path rule needs HTTP), the DENY ipBlocks rule
// applies.
func TestEnforceTCP(t *testing.T) {
	fc := chain(t, inbound(t, workloadTCP), 9000)
	fs := fc.GetFilters()
	if len(fs) != 3 || fs[len(fs)-1].GetName() != "envoy.filters.network.tcp_proxy" {
		t.Fatalf("TCP chain filters %v, want DENY and ALLOW RBAC then tcp_proxy", fs)
	}
	stats := &rbac.Counters{}
	reg := listener.Registry{rbacnet.TypeURL: rbacnet.Filters{Stats: stats}}
	var handlers []listener.ConnHandler
	for _, f := range fs[:len(fs)-1] {
		h, err := reg.Build(f)
		if err != nil {
			t.Fatalf("building %s: %v", f.GetName(), err)
		}
		handlers = append(handlers, h)
	}
	cases := []struct {
		name     string
		source   string
		identity string
		forward  bool
	}{
		{"trusted namespace", "10.1.0.5:5000", "spiffe://cluster.local/ns/trusted/sa/db", true},
		{"no identity", "10.1.0.5:5000", "", false},
		{"other namespace", "10.1.0.5:5000", "spiffe://cluster.local/ns/other/sa/db", false},
		{"denied source block", "10.66.1.1:5000", "spiffe://cluster.local/ns/trusted/sa/db", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forwarded := false
			var h listener.ConnHandler = terminal(func() { forwarded = true })
			for i := len(handlers) - 1; i >= 0; i-- {
				h = handlers[i].(listener.Wrapper).Wrap(h)
			}
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			h.Serve(context.Background(), &listener.Conn{
				Conn: a, Source: netip.MustParseAddrPort(tc.source),
				Destination: netip.MustParseAddrPort("10.0.0.9:9000"),
				MutualTLS:   tc.identity != "", PeerIdentity: tc.identity,
			})
			if forwarded != tc.forward {
				t.Errorf("forwarded=%v, want %v", forwarded, tc.forward)
			}
		})
	}
	// Both filters count under "tcp." as in Envoy: the DENY filter allows
	// three connections and denies one, the ALLOW filter allows one of the
	// three it sees.
	if stats.Get("tcp.rbac.denied") != 3 || stats.Get("tcp.rbac.allowed") != 4 {
		t.Errorf("counters %v: denied=%d allowed=%d", stats.Names(), stats.Get("tcp.rbac.denied"), stats.Get("tcp.rbac.allowed"))
	}
}

type terminal func()

func (f terminal) Serve(context.Context, *listener.Conn) { f() }

// TestTCPDenyWithHTTPFieldDeniesAll: Istio's rule for a DENY rule that
// needs HTTP attributes on a TCP chain is to drop those attributes, so it
// denies every connection rather than none.
func TestTCPDenyWithHTTPFieldDeniesAll(t *testing.T) {
	fs := chain(t, inbound(t, workload), 9000).GetFilters()
	h, err := rbacnet.Filters{}.Build(fs[0])
	if err != nil {
		t.Fatal(err)
	}
	ok := h.(*rbacnet.Handler).Allow(&listener.Conn{
		Source: netip.MustParseAddrPort("10.1.0.5:5000"), Destination: netip.MustParseAddrPort("10.0.0.9:9000"),
		MutualTLS: true, PeerIdentity: "spiffe://cluster.local/ns/trusted/sa/db",
	})
	if ok {
		t.Error("connection allowed by a DENY rule on request.headers")
	}
}
