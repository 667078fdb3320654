package jwt

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

const issA = "https://a.example"

// TestVerification runs one Istio-shaped provider (issuer issA, audience
// "svc", default locations) against each kind of token.
func TestVerification(t *testing.T) {
	key := newRSA(t, "k1")
	other := newRSA(t, "k1") // same kid, different key
	ec := newEC(t, "e1")
	ed := newEd(t, "d1")
	f := build(t, istioConfig(&jwtv3.JwtProvider{
		Issuer: issA, Audiences: []string{"svc"}, PayloadInMetadata: "payload",
		JwksSourceSpecifier: localJWKS(jwks(t, key, ec, ed)),
	}))
	good := claims(issA, "alice", "aud", "svc")
	pub := key.priv.Public().(*rsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsWith := func(secret []byte) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(good)
		o, _ := s.Sign(b)
		out, _ := o.CompactSerialize()
		return out
	}
	nested := `{"a":` + strings.Repeat("[", 12000) + strings.Repeat("]", 12000) + "}"
	e := base64.RawURLEncoding
	deep := e.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + e.EncodeToString([]byte(nested)) + ".c2ln"
	huge := key.sign(t, claims(issA, "alice", "aud", "svc", "blob", strings.Repeat("x", 3<<20)), nil)
	attacker := newRSA(t, "evil")
	noSig := key.sign(t, good, nil)
	noSig = noSig[:strings.LastIndex(noSig, ".")+1]

	cases := []struct {
		name   string
		header http.Header
		status int
		body   string
	}{
		{"valid RS256", bearer(key.sign(t, good, nil)), 200, ""},
		{"valid ES256", bearer(ec.sign(t, good, nil)), 200, ""},
		{"valid EdDSA", bearer(ed.sign(t, good, nil)), 200, ""},
		{"lower-case bearer scheme", http.Header{"Authorization": {"bearer " + key.sign(t, good, nil)}}, 200, ""},
		{"no token passes", nil, 200, ""},
		{"other scheme is no token", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, 200, ""},
		{"expired", bearer(key.sign(t, claims(issA, "a", "aud", "svc", "exp", testNow.Add(-2*time.Minute).Unix()), nil)), 401, "Jwt is expired"},
		{"expired within skew", bearer(key.sign(t, claims(issA, "a", "aud", "svc", "exp", testNow.Add(-30*time.Second).Unix()), nil)), 200, ""},
		{"nbf in the future", bearer(key.sign(t, claims(issA, "a", "aud", "svc", "nbf", testNow.Add(2*time.Minute).Unix()), nil)), 401, "Jwt not yet valid"},
		{"nbf within skew", bearer(key.sign(t, claims(issA, "a", "aud", "svc", "nbf", testNow.Add(30*time.Second).Unix()), nil)), 200, ""},
		{"wrong audience", bearer(key.sign(t, claims(issA, "a", "aud", "other"), nil)), 403, "Audiences in Jwt are not allowed"},
		{"no audience", bearer(key.sign(t, claims(issA, "a"), nil)), 403, "Audiences in Jwt are not allowed"},
		{"audience in a list, with scheme and slash", bearer(key.sign(t, claims(issA, "a", "aud", []string{"x", "https://svc/"}), nil)), 200, ""},
		{"unlisted issuer, correctly signed", bearer(key.sign(t, claims("https://evil.example", "a", "aud", "svc"), nil)), 401, "Jwt issuer is not configured"},
		{"bad signature", bearer(other.sign(t, good, nil)), 401, "Jwt verification fails"},
		{"alg none", bearer(rawToken(t, map[string]any{"alg": "none"}, good, nil)), 401, "Jwt header [alg] is not supported"},
		{"alg none with signature", bearer(rawToken(t, map[string]any{"alg": "none", "kid": "k1"}, good, []byte("x"))), 401, "Jwt header [alg] is not supported"},
		{"empty signature", bearer(noSig), 401, "Jwt verification fails"},
		{"HS256 with the RSA public key (PEM)", bearer(hsWith(pemKey)), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"HS256 with the RSA modulus", bearer(hsWith(pub.N.Bytes())), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"kid elsewhere with embedded jwk", bearer(attacker.sign(t, good, map[jose.HeaderKey]any{
			"jwk": jose.JSONWebKey{Key: attacker.priv.Public()}, "jku": "https://evil.example/jwks",
			"x5u": "https://evil.example/cert",
		})), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"known kid, attacker key", bearer(func() string { a := newRSA(t, "k1"); return a.sign(t, good, nil) }()), 401, "Jwt verification fails"},
		{"bad base64", bearer("!!!.@@@.###"), 200, ""}, // not JWT characters: nothing extracted
		{"bad base64 in segments", bearer("eyJ.e30.%%"), 401, ""},
		{"two sections", bearer("eyJhbGciOiJSUzI1NiJ9.e30"), 401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{"3 MB token", bearer(huge), 401, "Jwt is too large"},
		{"deeply nested claims", bearer(deep), 401, "Jwt payload is an invalid JSON"},
		{"exp of the wrong type", bearer(key.sign(t, claims(issA, "a", "aud", "svc", "exp", "tomorrow"), nil)), 401, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, f, "/api?x=1", tc.header)
			if r.status != tc.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if tc.status != 200 {
				if r.passed {
					t.Fatal("rejected request reached the next filter")
				}
				if tc.body != "" && r.body != tc.body {
					t.Errorf("body %q, want %q", r.body, tc.body)
				}
				wa := r.header.Get("Www-Authenticate")
				if wa != `Bearer realm="http://svc.example/api", error="invalid_token"` {
					t.Errorf("www-authenticate %q", wa)
				}
				if !strings.HasPrefix(r.details, "jwt_authn_access_denied{") {
					t.Errorf("details %q", r.details)
				}
				return
			}
			if !r.passed {
				t.Fatal("request did not reach the next filter")
			}
			p := payloadOf(t, r)
			if tc.header == nil || strings.HasPrefix(tc.header.Get("Authorization"), "Basic") || strings.HasPrefix(tc.name, "bad base64") {
				if p != nil {
					t.Errorf("metadata %v without a token", r.metadata)
				}
				return
			}
			if p["iss"] != issA {
				t.Errorf("metadata payload %v", p)
			}
			if r.upstream.Get("Authorization") != "" {
				t.Error("token forwarded upstream although forward is false")
			}
		})
	}
}

// TestLocations reads tokens from each configured location.
func TestLocations(t *testing.T) {
	key := newRSA(t, "k1")
	tok := key.sign(t, claims(issA, "alice"), nil)
	f := build(t, istioConfig(&jwtv3.JwtProvider{
		Issuer:            issA,
		PayloadInMetadata: "payload",
		FromHeaders: []*jwtv3.JwtHeader{
			{Name: "x-jwt-assertion"},
			{Name: "x-token", ValuePrefix: "Token "},
		},
		FromParams:          []string{"jwt"},
		FromCookies:         []string{"session"},
		JwksSourceSpecifier: localJWKS(jwks(t, key)),
	}))
	cases := []struct {
		name    string
		target  string
		header  http.Header
		status  int
		verfied bool
	}{
		{"plain header", "/", http.Header{"X-Jwt-Assertion": {tok}}, 200, true},
		{"header with prefix", "/", http.Header{"X-Token": {"Token " + tok}}, 200, true},
		{"prefix inside the value", "/", http.Header{"X-Token": {"scheme=Token " + tok + ", other"}}, 200, true},
		{"header without its prefix", "/", http.Header{"X-Token": {tok}}, 200, false},
		{"query parameter", "/p?a=b&jwt=" + tok, nil, 200, true},
		{"cookie", "/", http.Header{"Cookie": {"a=b; session=" + tok}}, 200, true},
		{"default Authorization not configured", "/", bearer(tok), 200, false},
		{"default access_token not configured", "/?access_token=" + tok, nil, 200, false},
		{"bad token in cookie", "/", http.Header{"Cookie": {"session=e30.e30.e30"}}, 401, false},
		{"good header, bad parameter", "/?jwt=e30.e30.e30", http.Header{"X-Jwt-Assertion": {tok}}, 401, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, f, tc.target, tc.header)
			if r.status != tc.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if got := payloadOf(t, r) != nil; got != tc.verfied {
				t.Errorf("verified=%v, want %v", got, tc.verfied)
			}
		})
	}
	t.Run("default locations", func(t *testing.T) {
		f := build(t, istioConfig(&jwtv3.JwtProvider{Issuer: issA, PayloadInMetadata: "payload", JwksSourceSpecifier: localJWKS(jwks(t, key))}))
		if r := run(t, f, "/?access_token="+tok, nil); payloadOf(t, r) == nil {
			t.Errorf("access_token parameter not read: %d %q", r.status, r.body)
		}
	})
}

// TestMultipleIssuers uses Istio's requirement for two providers: a valid
// token of either issuer passes, a token of a third issuer fails, a
// missing token passes.
func TestMultipleIssuers(t *testing.T) {
	ka, kb := newRSA(t, "a"), newEC(t, "b")
	const issB = "https://b.example"
	f := build(t, istioConfig(
		&jwtv3.JwtProvider{Issuer: issA, PayloadInMetadata: "payload", JwksSourceSpecifier: localJWKS(jwks(t, ka))},
		&jwtv3.JwtProvider{Issuer: issB, PayloadInMetadata: "payload", JwksSourceSpecifier: localJWKS(jwks(t, kb))},
	))
	cases := []struct {
		name   string
		header http.Header
		status int
		iss    string
	}{
		{"issuer A", bearer(ka.sign(t, claims(issA, "x"), nil)), 200, issA},
		{"issuer B", bearer(kb.sign(t, claims(issB, "y"), nil)), 200, issB},
		{"issuer B signed with A's key", bearer(ka.sign(t, claims(issB, "y"), nil)), 401, ""},
		{"third issuer", bearer(ka.sign(t, claims("https://c.example", "z"), nil)), 401, ""},
		{"missing", nil, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, f, "/", tc.header)
			if r.status != tc.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if tc.iss != "" && payloadOf(t, r)["iss"] != tc.iss {
				t.Errorf("payload %v", payloadOf(t, r))
			}
		})
	}
}

// TestOutputs checks forward, forward_payload_header, claim_to_headers and
// space-delimited claims in metadata.
func TestOutputs(t *testing.T) {
	key := newRSA(t, "k1")
	c := claims(issA, "alice", "scope", "read write", "org", map[string]any{"team": "blue", "n": 7}, "admin", true, "groups", []string{"g"})
	tok := key.sign(t, c, nil)
	f := build(t, istioConfig(&jwtv3.JwtProvider{
		Issuer: issA, Forward: true, ForwardPayloadHeader: "x-jwt-payload", PayloadInMetadata: "payload",
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"permission", "scope"}},
		ClaimToHeaders: []*jwtv3.JwtClaimToHeader{
			{HeaderName: "x-sub", ClaimName: "sub"}, {HeaderName: "x-team", ClaimName: "org.team"},
			{HeaderName: "x-n", ClaimName: "org.n"}, {HeaderName: "x-admin", ClaimName: "admin"},
			{HeaderName: "x-groups", ClaimName: "groups"}, {HeaderName: "x-none", ClaimName: "absent"},
		},
		JwksSourceSpecifier: localJWKS(jwks(t, key)),
	}))
	r := run(t, f, "/", http.Header{"Authorization": {"Bearer " + tok}, "X-Sub": {"spoofed"}})
	if r.status != 200 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	if r.upstream.Get("Authorization") == "" {
		t.Error("forward: token removed")
	}
	if got, want := r.upstream.Get("X-Jwt-Payload"), strings.Split(tok, ".")[1]; got != want {
		t.Errorf("payload header %q, want %q", got, want)
	}
	want := map[string]string{"X-Sub": "alice", "X-Team": "blue", "X-N": "7", "X-Admin": "true", "X-Groups": "", "X-None": ""}
	for h, v := range want {
		if got := r.upstream.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	scope, _ := payloadOf(t, r)["scope"].([]any)
	if len(scope) != 2 || scope[0] != "read" || scope[1] != "write" {
		t.Errorf("scope in metadata %#v, want [read write]", payloadOf(t, r)["scope"])
	}
}

// TestEmptyKeySet: a provider whose keys could not be fetched has none;
// every token fails, a missing token still passes.
func TestEmptyKeySet(t *testing.T) {
	key := newRSA(t, "k1")
	f := build(t, istioConfig(&jwtv3.JwtProvider{Issuer: issA, JwksSourceSpecifier: localJWKS(`{"keys":[]}`)}))
	if r := run(t, f, "/", bearer(key.sign(t, claims(issA, "a"), nil))); r.status != 401 {
		t.Errorf("status %d, want 401", r.status)
	}
	if r := run(t, f, "/", nil); r.status != 200 {
		t.Errorf("missing token: status %d, want 200", r.status)
	}
}

// TestRequirements covers the requirement kinds Istio does not generate.
func TestRequirements(t *testing.T) {
	key := newRSA(t, "k1")
	tok := key.sign(t, claims(issA, "a", "aud", "svc"), nil)
	prov := &jwtv3.JwtProvider{Issuer: issA, PayloadInMetadata: "payload", JwksSourceSpecifier: localJWKS(jwks(t, key))}
	mk := func(req *jwtv3.JwtRequirement, prefix string) *jwtv3.JwtAuthentication {
		cfg := istioConfig(prov)
		cfg.Rules[0].RequirementType = &jwtv3.RequirementRule_Requires{Requires: req}
		cfg.Rules[0].Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}}
		return cfg
	}
	name := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}}
	cases := []struct {
		name   string
		req    *jwtv3.JwtRequirement
		path   string
		header http.Header
		status int
	}{
		{"provider required, missing", name, "/", nil, 401},
		{"provider required, present", name, "/", bearer(tok), 200},
		{"rule does not match the path", name, "/other", nil, 200},
		{"audiences override", &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderAndAudiences{
			ProviderAndAudiences: &jwtv3.ProviderWithAudiences{ProviderName: "origins-0", Audiences: []string{"nope"}}}}, "/", bearer(tok), 403},
		{"allow missing or failed, bad token", &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissingOrFailed{}}, "/", bearer("e30.e30.e30"), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "/"
			if tc.path == "/other" {
				prefix = "/api"
			}
			f := build(t, mk(tc.req, prefix))
			r := run(t, f, tc.path, tc.header)
			if r.status != tc.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tc.status)
			}
			if tc.status == 401 && tc.header == nil {
				if wa := r.header.Get("Www-Authenticate"); wa != `Bearer realm="http://svc.example/"` {
					t.Errorf("missing token www-authenticate %q", wa)
				}
			}
		})
	}
	t.Run("CORS preflight bypassed", func(t *testing.T) {
		f := build(t, mk(name, "/"))
		req := http.Header{"Origin": {"https://x"}, "Access-Control-Request-Method": {"GET"}}
		r := runMethod(t, f, http.MethodOptions, "/", req)
		if r.status != 200 {
			t.Errorf("preflight status %d", r.status)
		}
	})
}

// TestBuildErrors: configurations the filter cannot enforce are refused
// with the field named.
func TestBuildErrors(t *testing.T) {
	ok := func() *jwtv3.JwtProvider {
		return &jwtv3.JwtProvider{Issuer: issA, JwksSourceSpecifier: localJWKS(`{"keys":[]}`)}
	}
	remote := ok()
	remote.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{Uri: "https://x/jwks", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}, Timeout: durationpb.New(time.Second)},
	}}
	badJWKS := ok()
	badJWKS.JwksSourceSpecifier = localJWKS(`not json`)
	unknown := istioConfig(ok())
	unknown.Rules[0].RequirementType = &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
		RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "nope"}}}
	cases := []struct {
		name string
		cfg  *jwtv3.JwtAuthentication
		want string
	}{
		{"remote jwks", istioConfig(remote), "remote_jwks"},
		{"invalid jwks", istioConfig(badJWKS), "local_jwks"},
		{"unknown provider", unknown, `unknown provider "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := anypb.New(tc.cfg)
			_, err := Factory{}.Build("jwt", a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
