package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func keySet(t *testing.T, kid string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: kid, Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// server is a JWKS server whose answer the test changes.
type server struct {
	mu     sync.Mutex
	body   string
	status int
	hits   atomic.Int32
	*httptest.Server
}

func newServer(t *testing.T, body string) *server {
	s := &server{body: body, status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.WriteHeader(s.status)
		_, _ = w.Write([]byte(s.body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newResolver(t *testing.T, c *clock, cfg Config) *Resolver {
	t.Helper()
	cfg.Now = c.now
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRotation: a rotated key set is picked up at the next refresh, not
// before.
func TestRotation(t *testing.T) {
	one, two := keySet(t, "one"), keySet(t, "two")
	srv := newServer(t, one)
	c := &clock{t: time.Unix(1000, 0)}
	r := newResolver(t, c, Config{})
	ctx := context.Background()
	if got := r.Keys(ctx, []string{srv.URL})[srv.URL]; got != one {
		t.Fatalf("first fetch %q", got)
	}
	srv.set(200, two)
	c.add(DefaultRefresh - time.Second)
	if r.Refresh(ctx) {
		t.Error("refresh before the interval changed something")
	}
	if got := r.Keys(ctx, []string{srv.URL})[srv.URL]; got != one {
		t.Error("keys changed before the refresh interval")
	}
	c.add(2 * time.Second)
	if !r.Refresh(ctx) {
		t.Fatal("rotation not reported")
	}
	if got := r.Keys(ctx, []string{srv.URL})[srv.URL]; got != two {
		t.Errorf("after refresh: %q, want the rotated set", got)
	}
	if srv.hits.Load() != 2 {
		t.Errorf("%d fetches, want 2 (Keys must not refetch known uris)", srv.hits.Load())
	}
}

// TestNoFallbackKeys: a server that is down at the first fetch yields no
// key set at all; when it comes back the set appears at the retry.
func TestNoFallbackKeys(t *testing.T) {
	one := keySet(t, "one")
	srv := newServer(t, one)
	srv.set(503, "down")
	c := &clock{t: time.Unix(1000, 0)}
	r := newResolver(t, c, Config{})
	ctx := context.Background()
	if got, ok := r.Keys(ctx, []string{srv.URL})[srv.URL]; ok {
		t.Fatalf("keys %q from a failing server", got)
	}
	if st := r.Statuses(); len(st) != 1 || st[0].HasKeys || !strings.Contains(st[0].LastError, "status 503") {
		t.Errorf("status %+v", st)
	}
	srv.set(200, one)
	c.add(DefaultRetryAfterFailure)
	if !r.Refresh(ctx) {
		t.Fatal("recovery not reported")
	}
	if got := r.Keys(ctx, []string{srv.URL})[srv.URL]; got != one {
		t.Errorf("after recovery %q", got)
	}
}

// TestStaleKeysDropped: failed refreshes keep the last set until it is
// MaxStale old, then it is dropped.
func TestStaleKeysDropped(t *testing.T) {
	one := keySet(t, "one")
	srv := newServer(t, one)
	c := &clock{t: time.Unix(1000, 0)}
	r := newResolver(t, c, Config{Refresh: time.Minute, MaxStale: 10 * time.Minute})
	ctx := context.Background()
	r.Keys(ctx, []string{srv.URL})
	srv.Close() // the server goes away
	for i := 0; i < 9; i++ {
		c.add(time.Minute)
		if r.Refresh(ctx) {
			t.Fatalf("minute %d: set changed while still fresh enough", i+1)
		}
		r.Keys(ctx, []string{srv.URL}) // still used
	}
	if _, ok := r.Keys(ctx, []string{srv.URL})[srv.URL]; !ok {
		t.Fatal("set dropped before MaxStale")
	}
	c.add(2 * time.Minute)
	if !r.Refresh(ctx) {
		t.Fatal("dropping the stale set not reported")
	}
	if _, ok := r.Keys(ctx, []string{srv.URL})[srv.URL]; ok {
		t.Error("stale set still served")
	}
}

// TestBadResponses: each bad answer is a failure, never a key set.
func TestBadResponses(t *testing.T) {
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(hang)
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"not JSON", "<html>", 200, "not a JWKS document"},
		{"no keys", `{"keys":[]}`, 200, "no usable signing key"},
		{"encryption key only", `{"keys":[{"kty":"oct","k":"c2VjcmV0","use":"enc"}]}`, 200, "no usable signing key"},
		{"too large", `{"keys":[],"pad":"` + strings.Repeat("x", 2048) + `"}`, 200, "larger than"},
		{"server error", keySet(t, "x"), 500, "status 500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.body)
			srv.set(tc.status, tc.body)
			r := newResolver(t, &clock{t: time.Unix(1, 0)}, Config{MaxBytes: 1024})
			if _, ok := r.Keys(context.Background(), []string{srv.URL})[srv.URL]; ok {
				t.Fatal("got keys")
			}
			if st := r.Statuses(); !strings.Contains(st[0].LastError, tc.want) {
				t.Errorf("error %q, want %q", st[0].LastError, tc.want)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		r := newResolver(t, &clock{t: time.Unix(1, 0)}, Config{Timeout: 200 * time.Millisecond})
		start := time.Now()
		if _, ok := r.Keys(context.Background(), []string{hanging.URL})[hanging.URL]; ok {
			t.Fatal("got keys")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("fetch took %v despite a 200ms timeout", d)
		}
	})
}

// TestRunCallsOnChange runs the loop with a short tick and stops it.
func TestRunCallsOnChange(t *testing.T) {
	one, two := keySet(t, "one"), keySet(t, "two")
	srv := newServer(t, one)
	changed := make(chan struct{}, 1)
	r, err := New(Config{Tick: 10 * time.Millisecond, Refresh: 20 * time.Millisecond, OnChange: func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.Keys(context.Background(), []string{srv.URL})
	srv.set(200, two)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("OnChange not called after rotation")
	}
	cancel()
	<-done
	if got := r.Keys(context.Background(), []string{srv.URL})[srv.URL]; got != two {
		t.Error("rotated set not served")
	}
}

// TestShortRefreshBoundsTickAndRetry: an operator's short refresh
// interval (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL=2s) also shortens the
// loop's tick and the retry after a failure, which default to at most it;
// explicit values and the long defaults are kept.
func TestShortRefreshBoundsTickAndRetry(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cfg              Config
		tick, retry, ref time.Duration
	}{
		{"defaults", Config{}, DefaultTick, DefaultRetryAfterFailure, DefaultRefresh},
		{"short refresh", Config{Refresh: 2 * time.Second}, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		{"between", Config{Refresh: 45 * time.Second}, DefaultTick, 45 * time.Second, 45 * time.Second},
		{"explicit kept", Config{Refresh: time.Second, Tick: time.Minute, RetryAfterFailure: time.Hour}, time.Minute, time.Hour, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.cfg.Tick != tc.tick || r.cfg.RetryAfterFailure != tc.retry || r.cfg.Refresh != tc.ref {
				t.Errorf("tick %v retry %v refresh %v, want %v %v %v", r.cfg.Tick, r.cfg.RetryAfterFailure, r.cfg.Refresh, tc.tick, tc.retry, tc.ref)
			}
		})
	}
}
