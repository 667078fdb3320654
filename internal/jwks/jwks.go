package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults (Istio's where it has one).
const (
	DefaultTimeout           = 5 * time.Second
	DefaultMaxBytes          = 1 << 20
	DefaultRefresh           = 20 * time.Minute
	DefaultRetryAfterFailure = time.Minute
	DefaultMaxStale          = 7 * 24 * time.Hour
	DefaultTick              = 30 * time.Second
)

// Config configures a Resolver. Zero values take the defaults.
type Config struct {
	// Client fetches key sets (nil: a client without keep-alives that
	// honours the environment's proxy settings).
	Client *http.Client
	// Timeout bounds one fetch, connection to last byte.
	Timeout time.Duration
	// MaxBytes bounds a key set document.
	MaxBytes int64
	// Refresh is how often a fetched set is fetched again (Istio's
	// PILOT_JWT_PUB_KEY_REFRESH_INTERVAL).
	Refresh time.Duration
	// RetryAfterFailure is how soon a failed fetch is retried (default
	// the shorter of DefaultRetryAfterFailure and Refresh).
	RetryAfterFailure time.Duration
	// MaxStale is how long a set stays in use without a successful
	// refresh; Evict how long an entry nobody asks for is kept (both
	// default to DefaultMaxStale).
	MaxStale time.Duration
	Evict    time.Duration
	// Tick is Run's period for checking due refreshes (default the
	// shorter of DefaultTick and Refresh).
	Tick time.Duration
	// OnChange is called from Run when a set changed, appeared or was
	// dropped; it must not block for long.
	OnChange func()
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// entry is one jwksUri's state. Guarded by Resolver.mu.
type entry struct {
	doc         string // "" when there is no usable set
	lastSuccess time.Time
	lastAttempt time.Time
	lastUsed    time.Time
	lastErr     error
}

// Resolver fetches, caches and refreshes key sets.
type Resolver struct {
	cfg Config
	mu  sync.Mutex
	m   map[string]*entry
}

// New returns a Resolver. It does no I/O.
func New(cfg Config) (*Resolver, error) {
	if cfg.Timeout < 0 || cfg.MaxBytes < 0 || cfg.Refresh < 0 || cfg.RetryAfterFailure < 0 ||
		cfg.MaxStale < 0 || cfg.Evict < 0 || cfg.Tick < 0 {
		return nil, errors.New("jwks resolver: negative duration or size in config")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.Refresh, DefaultRefresh)
	// A refresh interval shorter than the default retry or tick (an
	// operator's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL=15s) bounds them too:
	// a set is never refetched less often than the operator asked for.
	def(&cfg.RetryAfterFailure, min(DefaultRetryAfterFailure, cfg.Refresh))
	def(&cfg.MaxStale, DefaultMaxStale)
	def(&cfg.Evict, DefaultMaxStale)
	def(&cfg.Tick, min(DefaultTick, cfg.Refresh))
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{cfg: cfg, m: map[string]*entry{}}, nil
}

// Keys returns the current key set of each uri that has one. Uris never
// seen before are fetched first, concurrently, each within Timeout; a
// failed one has no set until a refresh succeeds.
func (r *Resolver) Keys(ctx context.Context, uris []string) map[string]string {
	now := r.cfg.Now()
	var fresh []string
	r.mu.Lock()
	for _, u := range uris {
		e, ok := r.m[u]
		if !ok {
			e = &entry{}
			r.m[u] = e
			fresh = append(fresh, u)
		}
		e.lastUsed = now
	}
	r.mu.Unlock()
	if len(fresh) > 0 {
		r.fetchAll(ctx, fresh)
	}
	out := make(map[string]string, len(uris))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range uris {
		if e := r.m[u]; e != nil && e.doc != "" {
			out[u] = e.doc
		}
	}
	return out
}

// fetchAll fetches uris concurrently and records the outcomes; it reports
// whether any usable set changed.
func (r *Resolver) fetchAll(ctx context.Context, uris []string) bool {
	type result struct {
		uri, doc string
		err      error
	}
	res := make([]result, len(uris))
	var wg sync.WaitGroup
	for i, u := range uris {
		wg.Add(1)
		go func() {
			defer wg.Done()
			doc, err := r.fetch(ctx, u)
			res[i] = result{uri: u, doc: doc, err: err}
		}()
	}
	wg.Wait()
	now := r.cfg.Now()
	changed := false
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range res {
		e := r.m[x.uri]
		if e == nil {
			continue // evicted meanwhile
		}
		e.lastAttempt, e.lastErr = now, x.err
		if x.err != nil {
			r.cfg.Logger.Warn("fetching JWKS failed", "uri", x.uri, "err", x.err)
			if e.doc != "" && now.Sub(e.lastSuccess) > r.cfg.MaxStale {
				r.cfg.Logger.Warn("dropping stale JWKS", "uri", x.uri, "last_success", e.lastSuccess)
				e.doc, changed = "", true
			}
			continue
		}
		if e.doc != x.doc {
			e.doc, changed = x.doc, true
		}
		e.lastSuccess = now
	}
	return changed
}

// fetch GETs one key set and checks it.
func (r *Resolver) fetch(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", fmt.Errorf("jwksUri %q: %w", uri, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("jwksUri %q: %w", uri, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxBytes+1))
	if err != nil {
		return "", fmt.Errorf("jwksUri %q: reading the body: %w", uri, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("jwksUri %q: status %d", uri, resp.StatusCode)
	}
	if int64(len(body)) > r.cfg.MaxBytes {
		return "", fmt.Errorf("jwksUri %q: key set larger than %d bytes", uri, r.cfg.MaxBytes)
	}
	if err := Check(body); err != nil {
		return "", fmt.Errorf("jwksUri %q: %w", uri, err)
	}
	return string(body), nil
}

// Check accepts a JWKS document with at least one usable signing key.
func Check(doc []byte) error {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return fmt.Errorf("not a JWKS document: %w", err)
	}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) == nil && k.Valid() && (k.Use == "" || k.Use == "sig") {
			return nil
		}
	}
	return errors.New("the JWKS document has no usable signing key")
}

// Refresh refetches the entries that are due and forgets those nobody
// asked for during Evict. It reports whether any set changed.
func (r *Resolver) Refresh(ctx context.Context) bool {
	now := r.cfg.Now()
	var due []string
	changed := false
	r.mu.Lock()
	for u, e := range r.m {
		if now.Sub(e.lastUsed) > r.cfg.Evict {
			delete(r.m, u)
			changed = changed || e.doc != ""
			continue
		}
		wait := r.cfg.Refresh
		if e.lastErr != nil || e.doc == "" {
			wait = r.cfg.RetryAfterFailure
		}
		if now.Sub(e.lastAttempt) >= wait {
			due = append(due, u)
		}
	}
	r.mu.Unlock()
	sort.Strings(due)
	if len(due) > 0 && r.fetchAll(ctx, due) {
		changed = true
	}
	return changed
}

// Run refreshes every Tick until ctx ends, calling OnChange after a
// refresh that changed a set.
func (r *Resolver) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.Refresh(ctx) && r.cfg.OnChange != nil {
			r.cfg.OnChange()
		}
	}
}

// Status is one uri's state, for debugging and tests.
type Status struct {
	URI         string
	HasKeys     bool
	LastSuccess time.Time
	LastError   string
}

// Statuses lists every entry, by uri.
func (r *Resolver) Statuses() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.m))
	for u, e := range r.m {
		s := Status{URI: u, HasKeys: e.doc != "", LastSuccess: e.lastSuccess}
		if e.lastErr != nil {
			s.LastError = e.lastErr.Error()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URI < out[j].URI })
	return out
}
