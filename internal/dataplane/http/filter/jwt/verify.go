package jwt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Status is the outcome of verifying one token or one requirement, with
// Envoy's (jwt_verify_lib's) names and messages.
type Status uint8

// Statuses.
const (
	OK Status = iota
	Missing
	BadFormat
	HeaderBadBase64
	HeaderBadJSON
	HeaderBadAlg
	AlgNotImplemented
	PayloadBadBase64
	PayloadBadJSON
	ClaimBadType
	SignatureBadBase64
	UnknownIssuer
	Expired
	NotYetValid
	MissingExpiration
	AudienceNotAllowed
	KidAlgMismatch
	VerificationFailed
	TooLarge
)

var statusText = [...]string{
	OK:                 "OK",
	Missing:            "Jwt is missing",
	BadFormat:          "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
	HeaderBadBase64:    "Jwt header is an invalid Base64url encoded",
	HeaderBadJSON:      "Jwt header is an invalid JSON",
	HeaderBadAlg:       "Jwt header [alg] field is required and must be a string",
	AlgNotImplemented:  "Jwt header [alg] is not supported",
	PayloadBadBase64:   "Jwt payload is an invalid Base64url encoded",
	PayloadBadJSON:     "Jwt payload is an invalid JSON",
	ClaimBadType:       "Jwt payload has a claim [iss, sub, aud, exp, nbf, iat] of the wrong type",
	SignatureBadBase64: "Jwt signature is an invalid Base64url encoded",
	UnknownIssuer:      "Jwt issuer is not configured",
	Expired:            "Jwt is expired",
	NotYetValid:        "Jwt not yet valid",
	MissingExpiration:  "Jwt is missing [exp] claim",
	AudienceNotAllowed: "Audiences in Jwt are not allowed",
	KidAlgMismatch:     "Jwks doesn't have key to match kid or alg from Jwt",
	VerificationFailed: "Jwt verification fails",
	TooLarge:           "Jwt is too large",
}

func (s Status) String() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return fmt.Sprintf("status %d", s)
}

// MaxTokenBytes bounds a token: longer ones fail without being decoded.
// (Envoy's header limits bound them before the filter; query strings and
// cookies are bounded here too.)
const MaxTokenBytes = 64 << 10

// token is a parsed, not yet verified, JWT.
type token struct {
	raw        string
	payloadB64 string // the payload segment as sent
	alg        jose.SignatureAlgorithm
	kid        string
	payload    map[string]any
	iss, sub   string
	aud        []string
	exp, nbf   float64
	hasExp     bool
	hasNbf     bool
}

// algorithms the filter verifies (jwt_verify_lib's list).
var algorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"HS256": jose.HS256, "HS384": jose.HS384, "HS512": jose.HS512,
	"EdDSA": jose.EdDSA,
}

// parse decodes a compact JWT without verifying it.
func parse(raw string) (*token, Status) {
	if len(raw) > MaxTokenBytes {
		return nil, TooLarge
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, BadFormat
	}
	hdr, err := b64(parts[0])
	if err != nil {
		return nil, HeaderBadBase64
	}
	var h map[string]json.RawMessage
	if json.Unmarshal(hdr, &h) != nil || h == nil {
		return nil, HeaderBadJSON
	}
	var algName string
	if a, ok := h["alg"]; !ok || json.Unmarshal(a, &algName) != nil {
		return nil, HeaderBadAlg
	}
	alg, ok := algorithms[algName]
	if !ok {
		return nil, AlgNotImplemented // "none" included
	}
	t := &token{raw: raw, payloadB64: parts[1], alg: alg}
	if k, ok := h["kid"]; ok {
		if json.Unmarshal(k, &t.kid) != nil {
			return nil, HeaderBadJSON
		}
	}
	body, err := b64(parts[1])
	if err != nil {
		return nil, PayloadBadBase64
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if dec.Decode(&t.payload) != nil || t.payload == nil || dec.More() {
		return nil, PayloadBadJSON
	}
	if st := t.claims(); st != OK {
		return nil, st
	}
	if _, err := b64(parts[2]); err != nil {
		return nil, SignatureBadBase64
	}
	return t, OK
}

// claims reads the registered claims the filter checks.
func (t *token) claims() Status {
	str := func(name string, dst *string) bool {
		v, ok := t.payload[name]
		if !ok {
			return true
		}
		*dst, ok = v.(string)
		return ok
	}
	num := func(name string, dst *float64, has *bool) bool {
		v, ok := t.payload[name]
		if !ok {
			return true
		}
		f, ok := v.(float64)
		if !ok || f < 0 || math.IsInf(f, 0) {
			return false
		}
		*dst, *has = f, true
		return true
	}
	var iat float64
	var hasIat bool
	if !str("iss", &t.iss) || !str("sub", &t.sub) ||
		!num("exp", &t.exp, &t.hasExp) || !num("nbf", &t.nbf, &t.hasNbf) || !num("iat", &iat, &hasIat) {
		return ClaimBadType
	}
	switch a := t.payload["aud"].(type) {
	case nil:
		if _, ok := t.payload["aud"]; ok {
			return ClaimBadType
		}
	case string:
		t.aud = []string{a}
	case []any:
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return ClaimBadType
			}
			t.aud = append(t.aud, s)
		}
	default:
		return ClaimBadType
	}
	return OK
}

// b64 decodes base64url with or without padding.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// checkTime applies exp and nbf with the clock skew (Envoy: expired when
// now > exp + skew, not yet valid when now + skew < nbf).
func (t *token) checkTime(now time.Time, skew time.Duration, requireExp bool) Status {
	sec := float64(now.Unix())
	sk := skew.Seconds()
	if t.hasNbf && sec+sk < t.nbf {
		return NotYetValid
	}
	if t.hasExp && t.exp != 0 && sec > t.exp+sk {
		return Expired
	}
	if requireExp && (!t.hasExp || t.exp == 0) {
		return MissingExpiration
	}
	return OK
}

// checkAudiences reports whether one of the token's audiences is allowed
// (jwt_verify_lib's comparison: scheme and trailing slash ignored).
func (t *token) checkAudiences(allowed []string) Status {
	if len(allowed) == 0 {
		return OK
	}
	for _, a := range t.aud {
		for _, b := range allowed {
			if sanitizeAudience(a) == sanitizeAudience(b) {
				return OK
			}
		}
	}
	return AudienceNotAllowed
}

func sanitizeAudience(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "http://"), "https://")
	return strings.TrimSuffix(s, "/")
}

// key is one usable verification key of a key set.
type key struct {
	kid string
	alg string // "" when the JWK names none
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey, []byte
}

// parseJWKS reads a JWKS document. Keys that cannot be used (unknown kty,
// bad parameters, encryption-only "use") are skipped, as Envoy skips them;
// a document that is not a JWKS object is an error.
func parseJWKS(doc string) ([]key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return nil, fmt.Errorf("invalid JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, fmt.Errorf("invalid JWKS: no \"keys\" array")
	}
	var out []key
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(raw) != nil || !jwk.Valid() {
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		var pub any
		switch k := jwk.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey, []byte:
			pub = k
		case *rsa.PrivateKey:
			pub = &k.PublicKey
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		case ed25519.PrivateKey:
			pub = k.Public()
		default:
			continue
		}
		out = append(out, key{kid: jwk.KeyID, alg: jwk.Algorithm, pub: pub})
	}
	return out, nil
}

// fits reports whether a key's type can verify alg.
func fits(pub any, alg jose.SignatureAlgorithm) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return k.Curve == elliptic.P256()
		case jose.ES384:
			return k.Curve == elliptic.P384()
		case jose.ES512:
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	case []byte:
		switch alg {
		case jose.HS256, jose.HS384, jose.HS512:
			return true
		}
	}
	return false
}

// verifySignature checks the token's signature with the keys that match
// its kid and alg.
func (t *token) verifySignature(keys []key) Status {
	jws, err := jose.ParseSignedCompact(t.raw, []jose.SignatureAlgorithm{t.alg})
	if err != nil || len(jws.Signatures) != 1 {
		return VerificationFailed
	}
	tried := false
	for i := range keys {
		k := &keys[i]
		if t.kid != "" && k.kid != "" && t.kid != k.kid {
			continue
		}
		if k.alg != "" && k.alg != string(t.alg) {
			continue
		}
		if !fits(k.pub, t.alg) {
			continue
		}
		tried = true
		if _, err := jws.Verify(k.pub); err == nil {
			return OK
		}
	}
	if !tried {
		return KidAlgMismatch
	}
	return VerificationFailed
}
