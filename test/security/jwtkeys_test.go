//go:build linux

package security

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rsaKey is an issuer's signing key with its key id.
type rsaKey struct {
	kid  string
	priv *rsa.PrivateKey
}

func newRSAKey(t *testing.T, kid string) rsaKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return rsaKey{kid: kid, priv: k}
}

// jwk is the public key as a JWKS entry.
func (k rsaKey) jwk() map[string]string {
	return map[string]string{
		"kty": "RSA", "kid": k.kid, "use": "sig", "alg": "RS256",
		"n": b64url(k.priv.N.Bytes()),
		"e": b64url(big.NewInt(int64(k.priv.E)).Bytes()),
	}
}

// publicPEM is the public key as an operator would publish it, the
// "secret" of the RS256→HS256 confusion attack.
func (k rsaKey) publicPEM(t *testing.T) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwksDoc renders a key set.
func jwksDoc(t *testing.T, keys ...rsaKey) string {
	t.Helper()
	set := struct {
		Keys []map[string]string `json:"keys"`
	}{Keys: []map[string]string{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token assembles a compact JWT from a header and a raw payload, signed
// by sign over "header.payload" (nil sign: an empty signature).
func token(t *testing.T, header map[string]any, payload []byte, sign func([]byte) []byte) string {
	t.Helper()
	in := b64url(mustJSON(t, header)) + "." + b64url(payload)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + b64url(sig)
}

// rs256 signs with k.
func rs256(t *testing.T, k rsaKey) func([]byte) []byte {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

// hs256 signs with secret as an HMAC key.
func hs256(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

// claims are a token's payload: iss, sub, aud and a validity window
// around now unless overridden (a nil value removes the claim).
func claims(t *testing.T, iss, sub string, over map[string]any) []byte {
	t.Helper()
	now := time.Now()
	c := map[string]any{
		"iss": iss, "sub": sub, "aud": jwtAudience,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return mustJSON(t, c)
}

// signed is a well-formed RS256 token of k for iss/sub.
func signed(t *testing.T, k rsaKey, iss, sub string, over map[string]any) string {
	t.Helper()
	return token(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": k.kid}, claims(t, iss, sub, over), rs256(t, k))
}

// jwksServer serves key set documents on loopback; the test changes what
// it answers and counts the requests.
type jwksServer struct {
	mu   sync.Mutex
	docs map[string]string // path → body; a missing path answers 404
	hits atomic.Int64
	addr string
}

func startJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{docs: map[string]string{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, ok := s.docs[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *jwksServer) url(path string) string { return "http://" + s.addr + path }

func (s *jwksServer) set(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[path] = body
}

// deadURL is an http URL on a loopback port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/jwks.json"
}
