package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"math/big"
	"net/http"
	"testing"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
)

// fuzzKey is a fixed P-256 key, so that seeds stay valid across runs.
func fuzzKey(t testing.TB) *signer {
	t.Helper()
	d, _ := new(big.Int).SetString("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721", 16)
	k := &ecdsa.PrivateKey{D: d}
	k.Curve = elliptic.P256()
	k.X, k.Y = k.Curve.ScalarBaseMult(d.Bytes())
	if _, err := x509.MarshalECPrivateKey(k); err != nil {
		t.Fatal(err)
	}
	return &signer{alg: jose.ES256, kid: "f", priv: k}
}

// FuzzJWT feeds arbitrary tokens through extraction, parsing and
// verification: no input may crash the filter, every answer is 200, 401
// or 403, and a token that passes must verify with the configured key.
func FuzzJWT(f *testing.F) {
	key := fuzzKey(f)
	good := key.sign(f, claims(issA, "alice", "aud", "svc"), nil)
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(good[:len(good)-3])
	f.Add(rawToken(f, map[string]any{"alg": "HS256", "kid": "f"}, claims(issA, "x"), []byte("sig")))
	f.Add(rawToken(f, map[string]any{"alg": "ES256", "crit": []string{"b64"}, "b64": false}, claims(issA, "x"), []byte("sig")))
	flt := build(f, istioConfig(&jwtv3.JwtProvider{
		Issuer: issA, Audiences: []string{"svc"}, PayloadInMetadata: "payload",
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"scope"}},
		ClaimToHeaders:             []*jwtv3.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}},
		JwksSourceSpecifier:        localJWKS(jwks(f, key)),
	}))
	pub := key.priv.Public()
	f.Fuzz(func(t *testing.T, tok string) {
		r := run(t, flt, "/", http.Header{"Authorization": {"Bearer " + tok}})
		switch r.status {
		case 200, 401, 403:
		default:
			t.Fatalf("status %d for %q", r.status, tok)
		}
		if r.status == 200 && payloadOf(t, r) != nil {
			// Accepted: the extracted token must really be signed by the key.
			raw, _ := fromHeaderValue("Bearer "+tok, defaultLocations()[0])
			jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatalf("accepted token %q does not parse: %v", raw, err)
			}
			if _, err := jws.Verify(pub); err != nil {
				t.Fatalf("accepted token %q does not verify: %v", raw, err)
			}
		}
		// The parser alone must agree with itself on the raw input.
		_, _ = parse(tok)
	})
}
