package discovery

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestJWKSFetchedIntoSnapshots: a RequestAuthentication with a jwksUri
// makes the control plane fetch the key set and put it in the snapshot
// (Istio's default: keys are inlined into the proxies' configuration), and
// a key set that changes at the server reaches a later snapshot.
func TestJWKSFetchedIntoSnapshots(t *testing.T) {
	var doc atomic.Value
	doc.Store(`{"keys":[{"kty":"EC","crv":"P-256","kid":"one","use":"sig","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)
	var hits atomic.Int32
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, doc.Load().(string))
	}))
	t.Cleanup(jwksServer.Close)
	uri := jwksServer.URL + "/jwks.json"
	s, _ := start(t, map[string]string{"ra.yaml": `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: default
spec:
  jwtRules:
  - issuer: https://issuer.example
    jwksUri: ` + uri + "\n"})
	got, ok := s.Snapshot().JWKS(uri)
	if !ok || !strings.Contains(got, `"kid":"one"`) {
		t.Fatalf("snapshot JWKS for %s = %q, %v; want the served key set", uri, got, ok)
	}
	if hits.Load() == 0 {
		t.Fatal("the key server was never asked")
	}
	// A refresh is due only after the resolver's refresh interval; a
	// config change makes a new snapshot, which must keep the cached set
	// without fetching again.
	before := hits.Load()
	s.changes.add(true, nil, nil, "test", time.Now())
	eventually(t, "a later snapshot with the cached set", func() error {
		if got, ok := s.Snapshot().JWKS(uri); !ok || !strings.Contains(got, `"kid":"one"`) {
			return fmt.Errorf("JWKS %q, %v", got, ok)
		}
		return nil
	})
	if hits.Load() != before {
		t.Errorf("cached key set fetched again on a new snapshot (%d → %d requests)", before, hits.Load())
	}
}
