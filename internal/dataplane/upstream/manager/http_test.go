package manager_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// TestLeastRequestDefault: without a DestinationRule Istio's clusters
// balance by least request: traffic reaches every backend, and a backend
// busy with requests gets fewer new ones.
func TestLeastRequestDefault(t *testing.T) {
	m, bs := setup(t, 3, "HTTP", "")
	if p := clusterStatus(t, m, svcCluster).Policy; p != lb.LeastRequest {
		t.Fatalf("policy %v, want LEAST_REQUEST", p)
	}
	got := map[string]int{}
	for range 60 {
		got[mustGet(t, m, router.PickContext{}).backend]++
	}
	for _, b := range bs {
		if got[b.name] == 0 {
			t.Errorf("backend %s got no traffic: %v", b.name, got)
		}
	}

	// Pin two requests on b0, then count where new ones go; requests
	// that land on b0 are held too.
	slow := bs[0]
	slow.holdRequests()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer slow.release()
	// send reports whether a request went to the slow backend.
	send := func() bool {
		wg.Add(1)
		done := make(chan result, 1)
		go func() {
			defer wg.Done()
			done <- get(context.Background(), m, svcCluster, router.PickContext{})
		}()
		select {
		case r := <-done:
			if r.err != nil {
				t.Errorf("request: %v", r.err)
			}
			return false
		case <-slow.arrived:
			return true
		}
	}
	for slow.inflight.Load() < 2 {
		send()
	}
	held := 0
	for range 90 {
		if send() {
			held++
		}
	}
	// Two random choices both landing on b0: 1 in 9 (10 of 90 expected),
	// and fewer as it accumulates requests.
	if held >= 25 {
		t.Errorf("busy backend got %d of 90 requests", held)
	}
}

// TestRoundRobinDistribution: ROUND_ROBIN spreads requests evenly.
func TestRoundRobinDistribution(t *testing.T) {
	m, bs := setup(t, 3, "HTTP", rule(`    loadBalancer: {simple: ROUND_ROBIN}`))
	got := map[string]int{}
	for range 300 {
		r := mustGet(t, m, router.PickContext{})
		if r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
		if r.info.PeerIdentity != "" {
			t.Fatalf("plaintext connection with peer identity %q", r.info.PeerIdentity)
		}
		got[r.backend]++
	}
	for _, b := range bs {
		if got[b.name] != 100 {
			t.Errorf("distribution %v, want 100 each", got)
			break
		}
	}
	// Keep-alive: one connection per backend.
	for _, b := range bs {
		if n := b.accepts.Load(); n != 1 {
			t.Errorf("backend %s accepted %d connections, want 1", b.name, n)
		}
	}
}

// TestConsistentHash: a consistent-hash DestinationRule keeps a hash on
// one backend; different hashes spread.
func TestConsistentHash(t *testing.T) {
	m, _ := setup(t, 3, "HTTP", rule(`    loadBalancer:
      consistentHash: {httpHeaderName: x-user}`))
	if p := clusterStatus(t, m, svcCluster).Policy; p != lb.RingHash {
		t.Fatalf("policy %v, want RING_HASH", p)
	}
	seen := map[string]bool{}
	for k := range uint64(30) {
		hash := k * 0x9e3779b97f4a7c15
		first := mustGet(t, m, router.PickContext{Hash: hash, HasHash: true}).backend
		for range 10 {
			if b := mustGet(t, m, router.PickContext{Hash: hash, HasHash: true}).backend; b != first {
				t.Fatalf("hash %x moved from %s to %s", hash, first, b)
			}
		}
		seen[first] = true
	}
	if len(seen) < 2 {
		t.Errorf("30 hashes all on %v", seen)
	}
}

// TestCircuitBreakerOverflow: maxConnections 1 and http1MaxPendingRequests
// 1 with a slow backend: one request in flight, one pending, the rest
// overflow (UO) at once.
func TestCircuitBreakerOverflow(t *testing.T) {
	m, bs := setup(t, 1, "HTTP", rule(`    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}`))
	b := bs[0]
	b.holdRequests()
	results := make(chan result, 2)
	var wg sync.WaitGroup
	send := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- get(context.Background(), m, svcCluster, router.PickContext{})
		}()
	}
	send()
	b.waitArrived(t, 1)
	send()
	eventually(t, "a pending request", func() bool { return poolStats(t, m, svcCluster).Pending == 1 })

	for range 3 {
		r := get(context.Background(), m, svcCluster, router.PickContext{})
		if !errors.Is(r.err, router.ErrOverflow) || !isKind(r.err, pool.Overflow) {
			t.Errorf("third request: %v, want overflow", r.err)
		}
		var e interface{ Flag() string }
		if errors.As(r.err, &e) && e.Flag() != "UO" {
			t.Errorf("flag %q, want UO", e.Flag())
		}
	}
	st := clusterStatus(t, m, svcCluster).Breakers[circuit.Default]
	if st.Overflows[circuit.PendingRequests] != 3 || st.Count[circuit.Connections] != 1 || st.Count[circuit.PendingRequests] != 1 {
		t.Errorf("breakers %+v", st)
	}
	b.release()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("held request: %v %d", r.err, r.status)
		}
	}
	if n := b.accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestMaxRequestsPerConnection: maxRequestsPerConnection 1 opens a
// connection per request; the default reuses one.
func TestMaxRequestsPerConnection(t *testing.T) {
	cases := []struct {
		name        string
		policy      string
		wantAccepts int64
	}{
		{"keep-alive", "", 1},
		{"one request per connection", rule(`    connectionPool:
      http: {maxRequestsPerConnection: 1}`), 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, bs := setup(t, 1, "HTTP", tc.policy)
			b := bs[0]
			for i := range 5 {
				r := mustGet(t, m, router.PickContext{})
				if wantReused := i > 0 && tc.wantAccepts == 1; r.info.Reused != wantReused {
					t.Errorf("request %d: reused %v, want %v", i, r.info.Reused, wantReused)
				}
			}
			if n := b.accepts.Load(); n != tc.wantAccepts {
				t.Errorf("%d connections, want %d", n, tc.wantAccepts)
			}
			if tc.wantAccepts == 5 {
				eventually(t, "connections closed after their request", func() bool { return b.closes.Load() == 5 })
				if s := poolStats(t, m, svcCluster); s.MaxRequestsReached != 5 {
					t.Errorf("max requests reached %d, want 5", s.MaxRequestsReached)
				}
			}
		})
	}
}

// TestIdleTimeout: connections idle for idleTimeout are closed.
func TestIdleTimeout(t *testing.T) {
	m, bs := setup(t, 1, "HTTP", rule(`    connectionPool:
      http: {idleTimeout: 150ms}`))
	start := time.Now()
	mustGet(t, m, router.PickContext{})
	eventually(t, "idle connection closed", func() bool { return bs[0].closes.Load() == 1 })
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	if s := poolStats(t, m, svcCluster); s.IdleTimeouts != 1 || s.Connections != 0 {
		t.Errorf("pool %+v", s)
	}
	// The next request opens a new connection.
	mustGet(t, m, router.PickContext{})
	if n := bs[0].accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestIdleTimeoutFromLastUse: the idle timeout counts from the end of a
// connection's last request, not from when it first went idle (the
// pool's idle timer is armed once and re-armed when it fires early).
func TestIdleTimeoutFromLastUse(t *testing.T) {
	m, bs := setup(t, 1, "HTTP", rule(`    connectionPool:
      http: {idleTimeout: 200ms}`))
	mustGet(t, m, router.PickContext{})
	time.Sleep(120 * time.Millisecond)
	second := time.Now()
	mustGet(t, m, router.PickContext{})
	if n := bs[0].accepts.Load(); n != 1 {
		t.Fatalf("%d connections, want the second request on the first one", n)
	}
	time.Sleep(time.Until(second.Add(140 * time.Millisecond)))
	if n := bs[0].closes.Load(); n != 0 {
		t.Fatalf("connection closed %v after its last request began, idle timeout 200ms", time.Since(second))
	}
	eventually(t, "idle connection closed", func() bool { return bs[0].closes.Load() == 1 })
	if d := time.Since(second); d < 200*time.Millisecond {
		t.Errorf("closed %v after the last request began, before the idle timeout", d)
	}
	if s := poolStats(t, m, svcCluster); s.IdleTimeouts != 1 {
		t.Errorf("pool %+v", s)
	}
}

// TestMaxConnectionDuration: a connection older than
// maxConnectionDuration finishes its request, then closes.
func TestMaxConnectionDuration(t *testing.T) {
	m, bs := setup(t, 1, "HTTP", rule(`    connectionPool:
      tcp: {maxConnectionDuration: 100ms}`))
	b := bs[0]
	b.holdRequests()
	done := make(chan result, 1)
	go func() { done <- get(context.Background(), m, svcCluster, router.PickContext{}) }()
	b.waitArrived(t, 1)
	eventually(t, "max duration reached", func() bool { return poolStats(t, m, svcCluster).MaxDurationReached == 1 })
	if b.closes.Load() != 0 {
		t.Fatal("connection closed under its request")
	}
	b.release()
	if r := <-done; r.err != nil || r.status != http.StatusOK {
		t.Fatalf("request: %v %d", r.err, r.status)
	}
	eventually(t, "connection closed after its request", func() bool { return b.closes.Load() == 1 })
}

// TestOutlierEjection: one of three backends answering 503 is ejected
// after consecutive5xxErrors and gets no traffic until the base ejection
// time has passed.
func TestOutlierEjection(t *testing.T) {
	m, bs := setup(t, 3, "HTTP", rule(`    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 20ms, baseEjectionTime: 500ms, maxEjectionPercent: 100}`))
	bad := bs[1]
	bad.status.Store(http.StatusServiceUnavailable)
	for bad.requests.Load() < 3 {
		mustGet(t, m, router.PickContext{})
	}
	ejected := time.Now()
	var st host.Health
	for _, h := range clusterStatus(t, m, svcCluster).Hosts {
		if h.Address == bad.addr() {
			st = h.Health
			if !h.Outlier.Ejected || h.Outlier.Ejections != 1 {
				t.Errorf("outlier state %+v", h.Outlier)
			}
		}
	}
	if st != host.Unhealthy {
		t.Errorf("ejected host health %v", st)
	}
	for time.Since(ejected) < 300*time.Millisecond {
		if r := mustGet(t, m, router.PickContext{}); r.status != http.StatusOK {
			t.Fatalf("request to %s got %d while it should be ejected", r.backend, r.status)
		}
	}
	if n := bad.requests.Load(); n != 3 {
		t.Fatalf("ejected backend got %d requests, want 3", n)
	}
	eventually(t, "the ejected backend back in rotation", func() bool {
		mustGet(t, m, router.PickContext{})
		return bad.requests.Load() > 3
	})
	if d := time.Since(ejected); d < 500*time.Millisecond {
		t.Errorf("back after %v, before the base ejection time", d)
	}
}

// TestH2CMultiplexing: an HTTP2 port gets HTTP/2 with prior knowledge, and
// concurrent requests share one connection.
func TestH2CMultiplexing(t *testing.T) {
	m, bs := setup(t, 1, "HTTP2", "")
	b := bs[0]
	const n = 50
	b.holdRequests()
	var wg sync.WaitGroup
	results := make(chan result, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- get(context.Background(), m, svcCluster, router.PickContext{})
		}()
	}
	b.waitArrived(t, n) // all n in flight at once
	b.release()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.status != http.StatusOK || r.info.Protocol != pool.HTTP2 {
			t.Fatalf("request: %v %d %v", r.err, r.status, r.info.Protocol)
		}
	}
	if a := b.accepts.Load(); a != 1 {
		t.Errorf("%d connections for %d concurrent requests, want 1", a, n)
	}
}

// TestNoDefaultUserAgent: the proxy forwards the client's User-Agent and
// adds none, over both protocols.
func TestNoDefaultUserAgent(t *testing.T) {
	for _, proto := range []string{"HTTP", "HTTP2"} {
		t.Run(proto, func(t *testing.T) {
			m, _ := setup(t, 1, proto, "")
			for _, ua := range []string{"", "curl/8"} {
				req, _ := http.NewRequest(http.MethodGet, "http://"+svcHost+"/", nil)
				if ua != "" {
					req.Header.Set("User-Agent", ua)
				}
				resp, _, err := m.RoundTrip(context.Background(), svcCluster, router.PickContext{}, req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if got := resp.Header.Get("X-User-Agent"); got != ua {
					t.Errorf("upstream saw User-Agent %q, want %q", got, ua)
				}
				if _, ok := req.Header["User-Agent"]; ok != (ua != "") {
					t.Error("the request's header was modified")
				}
			}
		})
	}
}

// TestRetryOverflow: a retry takes the retry breaker (maxRetries) until it
// is done.
func TestRetryOverflow(t *testing.T) {
	m, bs := setup(t, 1, "HTTP", rule(`    connectionPool:
      http: {maxRetries: 1}`))
	b := bs[0]
	b.holdRequests()
	done := make(chan result, 1)
	go func() { done <- get(context.Background(), m, svcCluster, router.PickContext{Attempt: 1}) }()
	b.waitArrived(t, 1)
	r := get(context.Background(), m, svcCluster, router.PickContext{Attempt: 1})
	if !errors.Is(r.err, router.ErrRetryOverflow) || errors.Is(r.err, router.ErrOverflow) {
		t.Errorf("second retry: %v, want retry overflow", r.err)
	}
	// First attempts are not limited by max_retries.
	first := make(chan result, 1)
	go func() { first <- get(context.Background(), m, svcCluster, router.PickContext{}) }()
	b.waitArrived(t, 1)
	b.release()
	for _, c := range []chan result{done, first} {
		if r := <-c; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if r := mustGet(t, m, router.PickContext{Attempt: 1}); r.status != http.StatusOK {
		t.Errorf("retry after release: %d", r.status)
	}
}

// TestUpgrade: a 101 response hands the connection over, readable and
// writable.
func TestUpgrade(t *testing.T) {
	b := newBackend(t, "ws", false)
	b.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	})
	m := startManager(t, manager.Config{})
	apply(t, m, generate(t, serviceYAML("HTTP", []*backend{b}, "")))
	req, _ := http.NewRequest(http.MethodGet, "http://"+svcHost+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, _, err := m.RoundTrip(context.Background(), svcCluster, router.PickContext{}, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("body %T is not writable", resp.Body)
	}
	if _, err := rw.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(rw).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo %q %v", line, err)
	}
	if err := rw.Close(); err != nil {
		t.Error(err)
	}
	st := clusterStatus(t, m, svcCluster)
	eventually(t, "the upgraded connection released", func() bool {
		st = clusterStatus(t, m, svcCluster)
		return st.Breakers[circuit.Default].Count[circuit.Connections] == 0 && st.Breakers[circuit.Default].Count[circuit.Requests] == 0
	})
}
