package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// waitFor is the longest a test waits for something that should happen.
const waitFor = 10 * time.Second

// testUpstream is a router.Upstream over net/http transports: each cluster
// has fixed backend addresses, taken in turn (skipping PickContext.Previous
// when it can); clusters in h2 are spoken to with HTTP/2 prior knowledge.
// Dial failures are router.ErrConnectFailure, other transport failures
// router.ErrReset.
type testUpstream struct {
	mu       sync.Mutex
	backends map[string][]string
	h2       map[string]bool
	next     map[string]int
	h1t, h2t *http.Transport
	// picks records the PickContext of every round trip, by cluster.
	picks map[string][]router.PickContext
}

func newTestUpstream(t testing.TB) *testUpstream {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", router.ErrConnectFailure, err)
		}
		return c, nil
	}
	u := &testUpstream{
		backends: map[string][]string{},
		h2:       map[string]bool{},
		next:     map[string]int{},
		picks:    map[string][]router.PickContext{},
		h1t:      &http.Transport{DialContext: dial, DisableCompression: true, MaxIdleConnsPerHost: 64},
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	u.h2t = &http.Transport{DialContext: dial, DisableCompression: true, Protocols: &p}
	t.Cleanup(func() {
		u.h1t.CloseIdleConnections()
		u.h2t.CloseIdleConnections()
	})
	return u
}

// add routes cluster to addr.
func (u *testUpstream) add(cluster, addr string, h2 bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.backends[cluster] = append(u.backends[cluster], addr)
	u.h2[cluster] = h2
}

// picksOf returns the PickContexts cluster was asked for.
func (u *testUpstream) picksOf(cluster string) []router.PickContext {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]router.PickContext(nil), u.picks[cluster]...)
}

// set replaces cluster's backends with addr.
func (u *testUpstream) set(cluster, addr string, h2 bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.backends[cluster] = []string{addr}
	u.h2[cluster] = h2
}

func (u *testUpstream) pick(cluster string, previous []string, pc router.PickContext) (string, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.picks[cluster] = append(u.picks[cluster], pc)
	addrs, ok := u.backends[cluster]
	if !ok {
		return "", false, router.ErrNoCluster
	}
	if len(addrs) == 0 {
		return "", false, router.ErrNoHealthyUpstream
	}
	var addr string
	for range addrs {
		addr = addrs[u.next[cluster]%len(addrs)]
		u.next[cluster]++
		if !contains(previous, addr) {
			break
		}
	}
	return addr, u.h2[cluster], nil
}

func (u *testUpstream) RoundTrip(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
	addr, h2, err := u.pick(cluster, pick.Previous, pick)
	if err != nil {
		return nil, router.Info{}, err
	}
	req.URL.Host = addr
	t := u.h1t
	if h2 {
		t = u.h2t
	}
	resp, err := t.RoundTrip(req.WithContext(ctx))
	if err != nil {
		if !errors.Is(err, router.ErrConnectFailure) {
			err = fmt.Errorf("%w: %w", router.ErrReset, err)
		}
		return nil, router.Info{Host: addr}, err
	}
	return resp, router.Info{Host: addr}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// seen is what a backend reports about a request it served.
type seen struct {
	Backend string              `json:"backend"`
	Method  string              `json:"method"`
	URI     string              `json:"uri"`
	Host    string              `json:"host"`
	Header  map[string][]string `json:"header"`
	Body    string              `json:"body"`
}

// backend is a test server that records what it serves and answers with
// its view of the request as JSON. Paths starting with /flaky fail with
// 503 every other time; /slow waits for the client to give up.
type backend struct {
	name  string
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []seen
	flaky atomic.Int64
}

func newBackend(t testing.TB, name string) *backend {
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the request did not arrive whole: it is not recorded
	}
	s := seen{Backend: b.name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(body)}
	b.mu.Lock()
	b.reqs = append(b.reqs, s)
	b.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/flaky"):
		if b.flaky.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	case strings.Contains(r.URL.Path, "/slow"):
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Server", "backend")
	_ = json.NewEncoder(w).Encode(s)
}

// requests returns a copy of what the backend served.
func (b *backend) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

// recorder is an Observer keeping a copy of every record, and where each
// was (the exchange it belonged to).
type recorder struct {
	mu   sync.Mutex
	recs []filter.Record
	ptrs []*filter.Record
}

func (r *recorder) Observe(rec *filter.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *rec
	c.Header = rec.Header.Clone()
	r.recs = append(r.recs, c)
	r.ptrs = append(r.ptrs, rec)
}

// since returns copies of the records from the n-th on, with where each
// was.
func (r *recorder) since(n int) ([]filter.Record, []*filter.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs[n:]), slices.Clone(r.ptrs[n:])
}

// sinceWait is since once at least n records past the from-th are in:
// a record is observed after its response has reached the client, so a
// client may be done before its last record is.
func (r *recorder) sinceWait(t testing.TB, from, n int) ([]filter.Record, []*filter.Record) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); r.count()-from < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d records after %v, want %d", r.count()-from, waitFor, n)
		}
	}
	return r.since(from)
}

// count is how many records there are.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// wait returns the first record for which match holds, waiting for it.
func (r *recorder) wait(t testing.TB, match func(*filter.Record) bool) filter.Record {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for i := range r.recs {
			if match(&r.recs[i]) {
				rec := r.recs[i]
				r.mu.Unlock()
				return rec
			}
		}
		r.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no matching request record")
	return filter.Record{}
}

// byPath matches records of a normalised path.
func byPath(path string) func(*filter.Record) bool {
	return func(r *filter.Record) bool { return r.Path == path }
}

// proxy is a connection manager served on a loopback socket.
type proxy struct {
	addr string
	m    *hcm.Manager
	rec  *recorder
}

// serveManager compiles h and serves it on 127.0.0.1 with a plain accept
// loop (listener.Conn as the listener package builds it).
func serveManager(t testing.TB, h *hcmv3.HttpConnectionManager, deps hcm.Deps) *proxy {
	t.Helper()
	rec := &recorder{}
	if deps.Observer == nil {
		deps.Observer = rec
	}
	m, err := hcm.Compile(h, deps)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				local := addrPort(c.LocalAddr())
				m.Serve(ctx, &listener.Conn{
					Conn:        c,
					Listener:    "test",
					Source:      addrPort(c.RemoteAddr()),
					Local:       local,
					Destination: local,
					Transport:   listener.TransportRawBuffer,
					Accepted:    time.Now(),
				})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
		m.Close()
	})
	return &proxy{addr: ln.Addr().String(), m: m, rec: rec}
}

func addrPort(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// mesh is the generated configuration served against test backends.
type mesh struct {
	proxy    *proxy
	up       *testUpstream
	backends map[string]*backend
}

// startMesh serves the generated 9080 connection manager, its RDS table
// fed through hcm.RouteTables, with one backend per cluster.
func startMesh(t testing.TB, mutate func(*hcmv3.HttpConnectionManager)) *mesh {
	t.Helper()
	h, rc := meshConfig(t)
	if mutate != nil {
		mutate(h)
	}
	tbl, err := route.Compile(rc)
	if err != nil {
		t.Fatalf("route.Compile: %v", err)
	}
	routes := &hcm.RouteTables{}
	routes.Set(rc.GetName(), tbl)
	up := newTestUpstream(t)
	ms := &mesh{up: up, backends: map[string]*backend{}}
	for _, c := range []string{reviewsV1, reviewsV2, reviewsV3, ratingsV1, ratingsV2, detailsV1, detailsV2, echoAll} {
		b := newBackend(t, c)
		ms.backends[c] = b
		up.add(c, b.addr(), false)
	}
	ms.proxy = serveManager(t, h, hcm.Deps{Routes: routes, Upstream: up})
	return ms
}

// client returns an HTTP client through the proxy: HTTP/1.1, or HTTP/2
// with prior knowledge (h2c).
func client(t testing.TB, h2 bool) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	if h2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get sends method to path on host through the proxy.
func (p *proxy) do(t testing.TB, c *http.Client, method, host, path string, header http.Header, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	return resp
}

// readAll reads and closes a response body.
func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// decodeSeen decodes a backend's JSON answer.
func decodeSeen(t testing.TB, resp *http.Response) seen {
	t.Helper()
	var s seen
	body := readAll(t, resp)
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, body, err)
	}
	return s
}
