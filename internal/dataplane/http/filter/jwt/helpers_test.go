package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// testNow is the filter's clock in tests.
var testNow = time.Unix(1_800_000_000, 0)

// signer is a test key: it signs tokens and publishes its JWKS.
type signer struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv crypto.Signer
}

func newRSA(t testing.TB, kid string) *signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{alg: jose.RS256, kid: kid, priv: k}
}

func newEC(t testing.TB, kid string) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{alg: jose.ES256, kid: kid, priv: k}
}

func newEd(t testing.TB, kid string) *signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{alg: jose.EdDSA, kid: kid, priv: k}
}

// jwks returns the public JWKS of the signers.
func jwks(t testing.TB, ss ...*signer) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, s := range ss {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.priv.Public(), KeyID: s.kid, Use: "sig", Algorithm: string(s.alg)})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign makes a compact JWT of claims; extra header fields are added.
func (s *signer) sign(t testing.TB, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if s.kid != "" {
		opts = opts.WithHeader("kid", s.kid)
	}
	for k, v := range extra {
		opts = opts.WithHeader(k, v)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sg.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawToken assembles a token from a header, claims and a signature.
func rawToken(t testing.TB, header, claims map[string]any, sig []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	e := base64.RawURLEncoding
	return e.EncodeToString(h) + "." + e.EncodeToString(c) + "." + e.EncodeToString(sig)
}

// claims returns standard claims valid at testNow, with overrides.
func claims(iss, sub string, kv ...any) map[string]any {
	c := map[string]any{"iss": iss, "sub": sub, "exp": testNow.Add(time.Hour).Unix(), "iat": testNow.Unix()}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
			continue
		}
		c[k] = kv[i+1]
	}
	return c
}

func localJWKS(doc string) *jwtv3.JwtProvider_LocalJwks {
	return &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
		Specifier: &corev3.DataSource_InlineString{InlineString: doc},
	}}
}

// istioConfig is the filter config Istio generates for providers named
// origins-0.. : one requires_any{provider, allow_missing}, or with several
// providers OR{P0, P1, .., AND{OR{P0, missing}, OR{P1, missing}, ..}}.
func istioConfig(providers ...*jwtv3.JwtProvider) *jwtv3.JwtAuthentication {
	out := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var inner, outer []*jwtv3.JwtRequirement
	for i, p := range providers {
		name := "origins-" + string(rune('0'+i))
		out.Providers[name] = p
		prov := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
		inner = append(inner, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
			RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
				prov, {RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
			}},
		}})
		outer = append(outer, prov)
	}
	req := inner[0]
	if len(inner) > 1 {
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{
			Requirements: append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{
				RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner},
			}}),
		}}}
	}
	out.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return out
}

func build(t testing.TB, cfg *jwtv3.JwtAuthentication) filter.Filter {
	t.Helper()
	a, err := anypb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Factory{Now: func() time.Time { return testNow }}.Build("envoy.filters.http.jwt_authn", a)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return f
}

// result is what one request through the filter produced.
type result struct {
	status   int
	body     string
	header   http.Header // response headers
	passed   bool
	upstream http.Header // request headers the next handler saw
	metadata map[string]map[string]any
	details  string
}

// run sends a request with the given target and headers through f.
func run(t testing.TB, f filter.Filter, target string, h http.Header) result {
	t.Helper()
	return runMethod(t, f, http.MethodGet, target, h)
}

// runMethod is run with a method.
func runMethod(t testing.TB, f filter.Filter, method, target string, h http.Header) result {
	t.Helper()
	req := httptest.NewRequest(method, "http://svc.example"+target, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	s := filter.NewStream(rec, req, nil)
	s.Routing = route.Request{Method: req.Method, Scheme: "http", Authority: "svc.example", Path: target}
	var out result
	f.Wrap(filter.HandlerFunc(func(s *filter.Stream) {
		out.passed = true
		out.upstream = s.Request.Header.Clone()
		out.metadata = s.Metadata
		s.Writer().WriteHeader(http.StatusOK)
	})).ServeStream(s)
	out.status, out.body, out.header, out.details = rec.Code, rec.Body.String(), rec.Header(), s.Record.Details
	return out
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func payloadOf(t testing.TB, r result) map[string]any {
	t.Helper()
	p, _ := r.metadata[MetadataNamespace]["payload"].(map[string]any)
	return p
}
