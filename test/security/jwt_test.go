//go:build linux

package security

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/trellismesh/trellis/test/framework"
)

// The issuers of SECURITY.md section F's setup.
const (
	issuer        = "https://issuer.trellis.test"
	issuerDown    = "https://down.trellis.test"    // jwksUri: nothing listens
	issuerGarbage = "https://garbage.trellis.test" // jwksUri: not a key set
	issuerEvil    = "https://evil.trellis.test"    // not configured at all
	jwtAudience   = "secure"
	// jwksRefresh is the control plane's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL
	// in TestJWT, so that F9's rotation is seen within seconds.
	jwksRefresh = time.Second
)

// jwtPolicy is section F's setup: RequestAuthentication for three
// issuers (one whose key set cannot be fetched, one whose key set is
// garbage), a DENY of /admin* to requests without a verified token
// (notRequestPrincipals "*"), and an ALLOW list: /public* for anyone,
// /admin* only for alice of the configured issuer.
func jwtPolicy(jwksURI, downURI, garbageURI string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: default
spec:
  selector:
    matchLabels:
      app: secure
  jwtRules:
  - issuer: %[4]s
    audiences: [%[7]s]
    jwksUri: %[1]s
  - issuer: %[5]s
    jwksUri: %[2]s
  - issuer: %[6]s
    jwksUri: %[3]s
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: require-jwt
  namespace: default
spec:
  selector:
    matchLabels:
      app: secure
  action: DENY
  rules:
  - from:
    - source:
        notRequestPrincipals: ["*"]
    to:
    - operation:
        paths: ["/admin*"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow
  namespace: default
spec:
  selector:
    matchLabels:
      app: secure
  action: ALLOW
  rules:
  - to:
    - operation:
        paths: ["/public*"]
  - from:
    - source:
        requestPrincipals: ["%[4]s/alice"]
    to:
    - operation:
        paths: ["/admin*"]
`, jwksURI, downURI, garbageURI, issuer, issuerDown, issuerGarbage, jwtAudience)
}

// jwtWant is what a JWT case must produce.
type jwtWant struct {
	status int
	body   string // a substring of the response body ("" : not checked)
	// marker: the request is allowed to /admin and the marker must come
	// back (the controls); otherwise it must not, and the backend must
	// never see the request.
	marker bool
}

var (
	wantServed = jwtWant{status: 200, marker: true}
	// want401 is a refusal by the JWT filter (jwt_authn's local reply).
	want401 = func(body string) jwtWant { return jwtWant{status: 401, body: body} }
	// wantRBAC403 is a refusal by authorization: no verified token.
	wantRBAC403 = jwtWant{status: 403, body: "RBAC: access denied"}
)

// jwtAttack is one request of a case: a token sent as a bearer token to
// path.
type jwtAttack struct {
	what  string
	path  string
	token string // "" : no Authorization header
	want  jwtWant
}

func bearer(what, tok string, want jwtWant) jwtAttack {
	return jwtAttack{what: what, path: "/admin", token: tok, want: want}
}

// TestJWT runs SECURITY.md section F over HTTP/1.1 and HTTP/2 against
// nginx, Apache httpd and the Go echo server behind the sidecar, with
// RequestAuthentication whose jwksUri the control plane fetches from a
// key server run by the test (Istio's default: keys inlined into the
// proxy's configuration), refreshed every second
// (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL).
func TestJWT(t *testing.T) {
	w := newWorld(t)
	keys := startJWKSServer(t)
	k1, k2 := newRSAKey(t, "k1"), newRSAKey(t, "k2")
	keys.set("/jwks.json", jwksDoc(t, k1))
	keys.set("/garbage.json", `{"keys": "not a key set"} <html>`)
	// The attacker's key, and a key server of theirs that tokens point at
	// (jku, x5u): the proxy must never fetch from it.
	evil := newRSAKey(t, "k1")
	evilKeys := startJWKSServer(t)
	evilKeys.set("/jwks.json", jwksDoc(t, evil))

	m := startMeshWith(t, w, meshOptions{cp: framework.ControlPlaneOptions{JWKSRefresh: jwksRefresh}},
		jwtPolicy(keys.url("/jwks.json"), deadURL(t), keys.url("/garbage.json")))
	alice := func(over map[string]any) string { return signed(t, k1, issuer, "alice", over) }
	// The proxy must have the key set (not only the policy) before the
	// cases run.
	m.waitJWT(t, alice(nil), 200)

	now := time.Now()
	rs := map[string]any{"alg": "RS256", "typ": "JWT", "kid": k1.kid}
	goodClaims := claims(t, issuer, "alice", nil)
	nested := strings.Repeat("[", 12000) + strings.Repeat("]", 12000)
	nestedClaims := []byte(fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":%q,"exp":%d,"x":%s}`, issuer, jwtAudience, now.Add(time.Hour).Unix(), nested))
	huge := alice(map[string]any{"pad": strings.Repeat("A", 3<<20)})

	cases := []struct {
		id      string
		attacks []jwtAttack
	}{
		{"Control", []jwtAttack{
			bearer("alice's valid token", alice(nil), wantServed),
			bearer("bob's valid token (not in the ALLOW list)", signed(t, k1, issuer, "bob", nil), wantRBAC403),
			{what: "public without a token", path: "/public", want: jwtWant{status: 200}},
		}},
		{"F1_NoToken", []jwtAttack{
			bearer("no Authorization header", "", wantRBAC403),
			{what: "empty bearer", path: "/admin", token: " ", want: wantRBAC403},
		}},
		{"F2_UnlistedIssuer", []jwtAttack{
			bearer("signed by the configured key, unlisted issuer", signed(t, k1, issuerEvil, "alice", nil), want401("Jwt issuer is not configured")),
			bearer("no issuer", signed(t, k1, issuer, "alice", map[string]any{"iss": nil}), want401("")),
			{what: "unlisted issuer on a public path", path: "/public", token: signed(t, k1, issuerEvil, "alice", nil), want: want401("Jwt issuer is not configured")},
		}},
		// Envoy's clock_skew_seconds defaults to 60 (go-control-plane's
		// JwtProvider doc): 45 s past exp or before nbf is still valid, 75 s
		// is not.
		{"F3_Expired", []jwtAttack{
			bearer("expired 2h ago", alice(map[string]any{"exp": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-3 * time.Hour).Unix()}), want401("Jwt is expired")),
			bearer("expired 75s ago (outside the 60s skew)", alice(map[string]any{"exp": now.Add(-75 * time.Second).Unix(), "nbf": now.Add(-time.Hour).Unix()}), want401("Jwt is expired")),
			bearer("expired 45s ago (inside the 60s skew)", alice(map[string]any{"exp": now.Add(-45 * time.Second).Unix(), "nbf": now.Add(-time.Hour).Unix()}), wantServed),
		}},
		{"F3_NotYetValid", []jwtAttack{
			bearer("nbf in 2h", alice(map[string]any{"nbf": now.Add(2 * time.Hour).Unix(), "exp": now.Add(3 * time.Hour).Unix()}), want401("Jwt not yet valid")),
			bearer("nbf in 75s (outside the 60s skew)", alice(map[string]any{"nbf": now.Add(75 * time.Second).Unix()}), want401("Jwt not yet valid")),
			bearer("nbf in 45s (inside the 60s skew)", alice(map[string]any{"nbf": now.Add(45 * time.Second).Unix()}), wantServed),
		}},
		// Envoy answers an audience mismatch with 403 and its own body
		// (filter.cc: JwtAudienceNotAllowed → Forbidden), not RBAC's; see
		// docs/security.md.
		{"F4_OtherAudience", []jwtAttack{
			bearer("aud other", alice(map[string]any{"aud": "other"}), jwtWant{status: 403, body: "Audiences in Jwt are not allowed"}),
			bearer("aud list without ours", alice(map[string]any{"aud": []string{"other", "secure.evil"}}), jwtWant{status: 403, body: "Audiences in Jwt are not allowed"}),
			bearer("no aud", alice(map[string]any{"aud": nil}), jwtWant{status: 403, body: "Audiences in Jwt are not allowed"}),
		}},
		{"F5_AlgNone", []jwtAttack{
			bearer("alg none, no signature", token(t, map[string]any{"alg": "none", "typ": "JWT"}, goodClaims, nil), want401("")),
			bearer("alg None", token(t, map[string]any{"alg": "None", "kid": k1.kid}, goodClaims, nil), want401("")),
			bearer("alg none with k1's signature", token(t, map[string]any{"alg": "none", "kid": k1.kid}, goodClaims, rs256(t, k1)), want401("")),
			bearer("no alg", token(t, map[string]any{"kid": k1.kid}, goodClaims, rs256(t, k1)), want401("")),
		}},
		{"F5_EmptySignature", []jwtAttack{
			bearer("RS256, empty signature", token(t, rs, goodClaims, nil), want401("")),
			bearer("RS256, signature of another payload", strings.Join(append(strings.Split(token(t, rs, goodClaims, nil), ".")[:2], strings.Split(alice(map[string]any{"sub": "bob"}), ".")[2]), "."), want401("Jwt verification fails")),
			bearer("two segments", strings.Join(strings.Split(alice(nil), ".")[:2], "."), want401("")),
		}},
		{"F5_HS256WithPublicKey", []jwtAttack{
			bearer("HS256 keyed with the public key's PEM", token(t, map[string]any{"alg": "HS256", "kid": k1.kid}, goodClaims, hs256(k1.publicPEM(t))), want401("")),
			bearer("HS256 keyed with the modulus", token(t, map[string]any{"alg": "HS256", "kid": k1.kid}, goodClaims, hs256(k1.priv.N.Bytes())), want401("")),
			bearer("HS256 keyed with the JWK", token(t, map[string]any{"alg": "HS256", "kid": k1.kid}, goodClaims, hs256(mustJSON(t, k1.jwk()))), want401("")),
		}},
		{"F6_JkuX5uKid", []jwtAttack{
			bearer("jku to the attacker's keys", token(t, map[string]any{"alg": "RS256", "kid": "k1", "jku": evilKeys.url("/jwks.json")}, goodClaims, rs256(t, evil)), want401("Jwt verification fails")),
			bearer("x5u to the attacker", token(t, map[string]any{"alg": "RS256", "kid": "k1", "x5u": evilKeys.url("/cert.pem")}, goodClaims, rs256(t, evil)), want401("Jwt verification fails")),
			bearer("embedded jwk", token(t, map[string]any{"alg": "RS256", "kid": "k1", "jwk": evil.jwk()}, goodClaims, rs256(t, evil)), want401("Jwt verification fails")),
			bearer("kid of the configured key, attacker's signature", token(t, map[string]any{"alg": "RS256", "kid": "k1"}, goodClaims, rs256(t, evil)), want401("Jwt verification fails")),
			bearer("kid elsewhere", token(t, map[string]any{"alg": "RS256", "kid": "../../evil/k1"}, goodClaims, rs256(t, evil)), want401("")),
		}},
		{"F7_BadBase64", []jwtAttack{
			bearer("payload with + and /", strings.Replace(alice(nil), ".", ".+/", 1), want401("")),
			bearer("header of one character", "a."+strings.SplitN(alice(nil), ".", 2)[1], want401("")),
			bearer("header not JSON", b64url([]byte("alg RS256"))+"."+strings.SplitN(alice(nil), ".", 2)[1], want401("")),
			bearer("signature with padding inside", alice(nil)+"=x", want401("")),
		}},
		{"F7_Huge3MB", nil}, // below: the request never gets to the JWT filter
		{"F7_DeeplyNested", []jwtAttack{
			bearer("claims nested 12000 deep", token(t, rs, nestedClaims, rs256(t, k1)), want401("Jwt payload is an invalid JSON")),
		}},
		{"F8_JWKSDown", []jwtAttack{
			bearer("issuer whose jwksUri is down, signed by k1", signed(t, k1, issuerDown, "alice", nil), want401("")),
			bearer("issuer whose jwksUri is down, signed by the attacker", signed(t, evil, issuerDown, "alice", nil), want401("")),
		}},
		{"F8_JWKSGarbage", []jwtAttack{
			bearer("issuer whose jwksUri serves garbage, signed by k1", signed(t, k1, issuerGarbage, "alice", nil), want401("")),
			bearer("issuer whose jwksUri serves garbage, alg none", token(t, map[string]any{"alg": "none"}, claims(t, issuerGarbage, "alice", nil), nil), want401("")),
		}},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			if c.id == "F7_Huge3MB" {
				m.hugeToken(t, huge, alice(nil))
				return
			}
			m.runJWT(t, c.attacks)
		})
	}
	if n := evilKeys.hits.Load(); n != 0 {
		t.Errorf("F6: the attacker's key server was asked %d times", n)
	}

	// F9 last: it retires k1. The control plane refetches the key set
	// every second; new tokens are accepted once the refresh reached the
	// proxy, and tokens of the removed key are refused.
	t.Run("F9_KeyRotation", func(t *testing.T) {
		tok1, tok2 := alice(nil), signed(t, k2, issuer, "alice", nil)
		m.runJWT(t, []jwtAttack{
			bearer("k2 before it is published", tok2, want401("Jwks doesn't have key to match kid or alg from Jwt")),
		})
		keys.set("/jwks.json", jwksDoc(t, k1, k2))
		m.waitJWT(t, tok2, 200)
		m.runJWT(t, []jwtAttack{
			bearer("k2 after the rotation", tok2, wantServed),
			bearer("k1 while both are published", tok1, wantServed),
		})
		keys.set("/jwks.json", jwksDoc(t, k2))
		m.waitJWT(t, tok1, 401)
		m.runJWT(t, []jwtAttack{
			bearer("k1 after its removal", tok1, want401("Jwks doesn't have key to match kid or alg from Jwt")),
			bearer("k2 after k1's removal", tok2, wantServed),
			bearer("a new k2 token", signed(t, k2, issuer, "alice", map[string]any{"jti": "new"}), wantServed),
		})
	})
	m.waitPolicy(t, "/public", 200)
	m.checkLogs(t)
}

// waitJWT polls /admin with tok on every backend until the sidecar answers
// code: the key set in force is the one just published.
func (m *mesh) waitJWT(t *testing.T, tok string, code int) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, func() error {
		for _, b := range m.backends {
			r := m.tryH1(b, request{method: "GET", authority: "secure", path: "/admin",
				headers: [][2]string{{"authorization", "Bearer " + tok}}})
			if r.status != code {
				return fmt.Errorf("%s: %v, want %d", b.name, r, code)
			}
		}
		return nil
	})
}

// runJWT sends each attack over both protocols to each backend.
func (m *mesh) runJWT(t *testing.T, attacks []jwtAttack) {
	for _, proto := range protocols {
		for _, b := range m.backends {
			t.Run(proto+"/"+b.name, func(t *testing.T) {
				for _, a := range attacks {
					m.checkJWT(t, proto, b, a)
				}
			})
		}
	}
}

func (m *mesh) checkJWT(t *testing.T, proto string, b *backend, a jwtAttack) {
	t.Helper()
	m.seq++
	id := fmt.Sprintf("%d", m.seq)
	req := request{method: "GET", authority: "secure", path: a.path, headers: [][2]string{{"x-case", id}}}
	if a.token != "" {
		req.headers = append(req.headers, [2]string{"authorization", "Bearer " + a.token})
	}
	var r result
	if proto == "http1" {
		r = h1(t, b.src, m.inbound, req.h1Raw())
	} else {
		r = h2(t, b.src, m.inbound, req)
	}
	leaked := strings.Contains(r.body, m.marker)
	if r.status != a.want.status {
		t.Errorf("%s: %v, want %d", a.what, r, a.want.status)
	}
	if a.want.body != "" && !strings.Contains(r.body, a.want.body) {
		t.Errorf("%s: body %q, want it to contain %q", a.what, r.body, a.want.body)
	}
	if a.want.marker {
		if !leaked {
			t.Errorf("%s: allowed request did not reach the backend's /admin: %v", a.what, r)
		}
		return
	}
	if leaked {
		t.Errorf("%s: the marker came back: %v", a.what, r)
	}
	if a.want.status == 200 {
		return
	}
	if seen := saw(b, id); len(seen) > 0 {
		t.Errorf("%s: %s saw the request: %q", a.what, b.name, seen)
	}
	m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: a.what})
}

// hugeToken is F7's 3 MB token: refused at the connection manager's
// header limits (431, or a reset over HTTP/2) before any JWT parsing,
// never forwarded, and the sidecar serves a valid token right after.
func (m *mesh) hugeToken(t *testing.T, tok, live string) {
	for _, proto := range protocols {
		for _, b := range m.backends {
			t.Run(proto+"/"+b.name, func(t *testing.T) {
				m.seq++
				id := fmt.Sprintf("%d", m.seq)
				req := request{method: "GET", authority: "secure", path: "/admin",
					headers: [][2]string{{"x-case", id}, {"authorization", "Bearer " + tok}}}
				var r result
				if proto == "http1" {
					r = h1(t, b.src, m.inbound, req.h1Raw())
				} else {
					r = h2Fragmented(t, b.src, m.inbound, req)
				}
				switch {
				case r.status == 431 || r.status == 401:
				case proto == "http1" && r.status == 0 && r.closed:
				case proto == "http2" && r.status == 0:
				default:
					t.Errorf("3 MB token: %v, want 431 or 401 (HTTP/2: or a reset)", r)
				}
				if strings.Contains(r.body, m.marker) {
					t.Errorf("3 MB token: the marker came back")
				}
				if seen := saw(b, id); len(seen) > 0 {
					t.Errorf("3 MB token: %s saw the request: %q", b.name, seen)
				}
				m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: "3 MB token"})
			})
		}
	}
	// No crash: a valid token is served after the attack.
	m.waitJWT(t, live, 200)
}

// h2Fragmented is h2 with the header block split into HEADERS and
// CONTINUATION frames of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE),
// so that a large block reaches the peer's header list limit instead of
// its frame size limit.
func h2Fragmented(t testing.TB, src, to string, r request) result {
	t.Helper()
	return h2On(dial(t, src, to), r)
}

// h2On sends r as the only stream of an HTTP/2 connection over c (h2c or
// an established TLS connection) and closes c.
func h2On(c net.Conn, r request) result {
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return result{how: "write: " + err.Error()}
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return result{how: "write: " + err.Error()}
	}
	fields := [][2]string{{":method", r.method}, {":scheme", "http"}, {":authority", r.authority}, {":path", r.path}}
	fields = append(fields, r.headers...)
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := buf.Bytes()
	const frag = 16 << 10
	first := block[:min(frag, len(block))]
	rest := block[len(first):]
	var out result
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}); err != nil {
		out.how = "write: " + err.Error()
		return out
	}
	for len(rest) > 0 {
		n := min(frag, len(rest))
		if err := fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
			// The peer gave up on the block and closed: what it answered
			// before is read below.
			break
		}
		rest = rest[n:]
	}
	return readStream(fr)
}
