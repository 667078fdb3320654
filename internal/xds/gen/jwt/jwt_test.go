package jwt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/jwks"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	"github.com/trellismesh/trellis/internal/xds/gen/hcmtest"
	"github.com/trellismesh/trellis/internal/xds/gen/jwt"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

// fixedKey is a deterministic P-256 key, so goldens are stable.
func fixedKey(hex string) *ecdsa.PrivateKey {
	d, _ := new(big.Int).SetString(hex, 16)
	k := &ecdsa.PrivateKey{D: d}
	k.Curve = elliptic.P256()
	k.X, k.Y = k.Curve.ScalarBaseMult(d.Bytes())
	return k
}

var (
	keyA = fixedKey("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
	keyB = fixedKey("0f56db78ca460b055c500064824bed999a25aaf48ebb519ac201537b85479813")
)

func jwksOf(t testing.TB, k *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: kid, Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sign(t testing.TB, k *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	o, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := o.CompactSerialize()
	return out
}

const services = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: httpbin}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-1, namespace: foo}
spec: {address: 10.0.0.9, labels: {app: httpbin}, serviceAccount: httpbin}
`

func policies(t testing.TB, jwksURI string) string {
	return services + `
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: issuers, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: https://b.example
    jwksUri: ` + jwksURI + `
    fromHeaders: [{name: x-jwt, prefix: "Token "}]
    fromParams: [jwt]
    fromCookies: [session]
    forwardOriginalToken: true
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-team, claim: team}]
  - issuer: https://a.example
    audiences: [httpbin]
    jwks: '` + jwksOf(t, keyA, "a") + `'
    spaceDelimitedClaims: [roles]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: other-workload, namespace: foo}
spec:
  selector: {matchLabels: {app: other}}
  jwtRules: [{issuer: https://ignored.example, jwks: '` + jwksOf(t, keyB, "x") + `'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: gateway-only, namespace: foo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]
  jwtRules: [{issuer: https://gateway.example, jwks: '` + jwksOf(t, keyB, "x") + `'}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/public*"]}}]
  - from: [{source: {requestPrincipals: ["https://a.example/alice"]}}]
    to: [{operation: {paths: ["/admin*"]}}]
    when: [{key: "request.auth.claims[roles]", values: [admin]}]
`
}

func snapshot(t testing.TB, cfgs []config.Config, keys map[string]string) *model.Snapshot {
	services, endpoints := gentest.Registry(cfgs, model.DefaultDomainSuffix)
	return model.NewSnapshot(model.SnapshotInput{
		Version: "test", Configs: cfgs, Services: services, Endpoints: endpoints, JWKS: keys,
	})
}

func proxy() *model.Proxy {
	p := gentest.Proxy("10.0.0.9", "foo", map[string]string{"app": "httpbin"})
	p.ServiceAccount = "httpbin"
	return p
}

// TestGolden: the filter for the workload's two rules (sorted by issuer,
// fetched keys inlined), and the empty key set when nothing was fetched.
func TestGolden(t *testing.T) {
	const uri = "https://keys.example/b.json"
	cfgs := gentest.YAML(t, policies(t, uri))
	snap := snapshot(t, cfgs, map[string]string{uri: jwksOf(t, keyB, "b")})
	p := proxy()
	res := jwt.Build(snap.RequestAuthentications(p.Namespace, p.Labels), snap.JWKS)
	if len(res.Warnings) != 0 || res.Filter == nil {
		t.Fatalf("warnings %v, filter %v", res.Warnings, res.Filter)
	}
	gentest.Golden(t, "two-issuers", res.Filter)

	unfetched := jwt.Build(snap.RequestAuthentications(p.Namespace, p.Labels), func(string) (string, bool) { return "", false })
	if len(unfetched.Warnings) != 1 || !strings.Contains(unfetched.Warnings[0], uri) {
		t.Errorf("warnings %v", unfetched.Warnings)
	}
	gentest.Golden(t, "not-fetched", unfetched.Filter)

	if r := jwt.Build(nil, snap.JWKS); r.Filter != nil {
		t.Error("filter without RequestAuthentication")
	}
}

// inboundHCM returns the generated HCM of the workload's port 8000.
func inboundHCM(t *testing.T, snap *model.Snapshot) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, l := range genlistener.Build(snap.Scope(proxy())) {
		if l.GetName() != genlistener.VirtualInboundListenerName {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			m := fc.GetFilterChainMatch()
			if m.GetDestinationPort().GetValue() == 8000 && m.GetTransportProtocol() == "raw_buffer" {
				h := &hcmv3.HttpConnectionManager{}
				if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				return h
			}
		}
	}
	t.Fatal("no inbound HCM for port 8000")
	return nil
}

const marker = "SECRET-MARKER"

type reply struct {
	status int
	body   string
	hdr    http.Header
}

func get(t *testing.T, addr, path string, h http.Header) reply {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
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
	return reply{resp.StatusCode, string(b), resp.Header}
}

// TestEnforce generates the workload's inbound chain with the control
// plane's resolver fetching the jwksUri from a test server, runs it in the
// real connection manager, and checks authentication and authorization
// together; then the key server rotates its key and, later, goes down.
func TestEnforce(t *testing.T) {
	var seen sync.Map // headers the backend received, by path
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, r.Header.Clone())
		_, _ = io.WriteString(w, marker+" "+r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	var mu sync.Mutex
	keysDoc, keysStatus := jwksOf(t, keyB, "b"), 200
	keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(keysStatus)
		_, _ = io.WriteString(w, keysDoc)
	}))
	t.Cleanup(keySrv.Close)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	res, err := jwks.New(jwks.Config{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	cfgs := gentest.YAML(t, policies(t, keySrv.URL+"/keys.json"))
	build := func() string {
		keys := res.Keys(context.Background(), model.JWKSURIs(cfgs))
		return hcmtest.Serve(t, inboundHCM(t, snapshot(t, cfgs, keys)), hcmtest.Clusters{"*": backend.Listener.Addr().String()}, nil)
	}
	addr := build()

	exp := time.Now().Add(time.Hour).Unix()
	alice := sign(t, keyA, "a", map[string]any{"iss": "https://a.example", "sub": "alice", "aud": "httpbin", "exp": exp, "roles": "dev admin"})
	aliceDev := sign(t, keyA, "a", map[string]any{"iss": "https://a.example", "sub": "alice", "aud": "httpbin", "exp": exp, "roles": "dev"})
	bob := sign(t, keyB, "b", map[string]any{"iss": "https://b.example", "sub": "bob", "exp": exp, "team": "blue"})
	forged := sign(t, keyB, "a", map[string]any{"iss": "https://a.example", "sub": "alice", "aud": "httpbin", "exp": exp, "roles": "admin"})
	expired := sign(t, keyA, "a", map[string]any{"iss": "https://a.example", "sub": "alice", "aud": "httpbin", "exp": time.Now().Add(-time.Hour).Unix()})
	auth := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	cases := []struct {
		name, path string
		h          http.Header
		status     int
	}{
		{"missing token: authorization denies", "/public", nil, 403},
		{"invalid token: 401", "/public", auth("e30.e30.e30"), 401},
		{"forged signature: 401", "/public", auth(forged), 401},
		{"expired: 401", "/public", auth(expired), 401},
		{"wrong audience: 403 from the JWT filter", "/public", auth(sign(t, keyA, "a", map[string]any{"iss": "https://a.example", "sub": "x", "aud": "other", "exp": exp})), 403},
		{"inline keys, valid", "/public", auth(alice), 200},
		{"fetched keys, header with prefix", "/public/b", http.Header{"X-Jwt": {"Token " + bob}}, 200},
		{"fetched keys, query parameter", "/public/q?jwt=" + bob, nil, 200},
		{"fetched keys, cookie", "/public/c", http.Header{"Cookie": {"session=" + bob}}, 200},
		{"issuer B in issuer A's location: 401", "/public", auth(bob), 401},
		{"claim condition met", "/admin", auth(alice), 200},
		{"claim condition not met", "/admin", auth(aliceDev), 403},
		{"other principal on admin", "/admin", http.Header{"X-Jwt": {"Token " + bob}}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, addr, tc.path, tc.h)
			if r.status != tc.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if tc.status != 200 && strings.Contains(r.body, marker) {
				t.Fatalf("marker leaked: %q", r.body)
			}
			if tc.status == 401 && !strings.Contains(r.hdr.Get("Www-Authenticate"), `error="invalid_token"`) {
				t.Errorf("www-authenticate %q", r.hdr.Get("Www-Authenticate"))
			}
		})
	}
	// Outputs reached the backend: issuer A's token removed, issuer B's
	// forwarded with its payload and claim headers.
	if h, _ := seen.Load("/public"); h.(http.Header).Get("Authorization") != "" {
		t.Error("issuer A's token forwarded although forwardOriginalToken is false")
	}
	if v, ok := seen.Load("/public/b"); !ok {
		t.Error("backend never saw /public/b")
	} else if h := v.(http.Header); h.Get("X-Jwt") == "" || h.Get("X-Team") != "blue" || h.Get("X-Jwt-Payload") != strings.Split(bob, ".")[1] {
		t.Errorf("backend headers %v", h)
	}

	// Rotation: the key server now publishes a new key for issuer B; after
	// the refresh interval the resolver fetches it and a new snapshot
	// carries it: new tokens pass, tokens of the old key fail.
	keyB2 := fixedKey("1111111111111111111111111111111111111111111111111111111111111111")
	mu.Lock()
	keysDoc = jwksOf(t, keyB2, "b2")
	now = now.Add(jwks.DefaultRefresh + time.Second)
	mu.Unlock()
	if !res.Refresh(context.Background()) {
		t.Fatal("rotation not picked up")
	}
	addr = build()
	bob2 := sign(t, keyB2, "b2", map[string]any{"iss": "https://b.example", "sub": "bob", "exp": exp})
	if r := get(t, addr, "/public", http.Header{"X-Jwt": {"Token " + bob2}}); r.status != 200 {
		t.Errorf("rotated key: status %d %q", r.status, r.body)
	}
	if r := get(t, addr, "/public", http.Header{"X-Jwt": {"Token " + bob}}); r.status != 401 {
		t.Errorf("old key after rotation: status %d", r.status)
	}

	// A resolver that cannot reach the key server has no keys for issuer
	// B: its tokens are rejected, issuer A (inline keys) still works.
	mu.Lock()
	keysStatus = 503
	mu.Unlock()
	fresh, err := jwks.New(jwks.Config{})
	if err != nil {
		t.Fatal(err)
	}
	keys := fresh.Keys(context.Background(), model.JWKSURIs(cfgs))
	if len(keys) != 0 {
		t.Fatalf("keys %v from a failing server", keys)
	}
	down := hcmtest.Serve(t, inboundHCM(t, snapshot(t, cfgs, keys)), hcmtest.Clusters{"*": backend.Listener.Addr().String()}, nil)
	if r := get(t, down, "/public", http.Header{"X-Jwt": {"Token " + bob2}}); r.status != 401 {
		t.Errorf("key server down: status %d, want 401", r.status)
	}
	if r := get(t, down, "/public", auth(alice)); r.status != 200 {
		t.Errorf("inline issuer with key server down: status %d", r.status)
	}
}
