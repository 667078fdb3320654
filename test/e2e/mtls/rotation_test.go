//go:build linux

package mtls

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/test/framework"
)

// Rotation timings: workload certificates live 20 s instead of the issue's
// "every minute", so that several renewals happen within the test (the
// sidecars renew at about half: every ~10 s); root-cert.pem is re-read
// every 500 ms.
const (
	rotationTTL  = 20 * time.Second
	rootRecheck  = 500 * time.Millisecond
	rotationTCP  = 9081
	loadInterval = 40 * time.Millisecond // per worker; 6 workers: ~150 req/s
)

// TestRotationUnderLoad runs its own mesh (bridge trr<pid>, 10.89.1.0/24)
// whose sidecars request 20 s certificates (--cert-ttl) and re-read the
// root file every 500 ms (--root-check-interval), with STRICT mutual TLS
// and constant load from the client namespace to the server's app through
// both sidecars' captured listeners:
//
//	2 workers  HTTP/1.1 keep-alive            → server:9080 (HTTP route, pooled upstream)
//	2 workers  HTTP/1.1, a new connection each → server:9080
//	2 workers  TCP, a new connection each      → server:9081 (TCP proxy: one mTLS
//	                                             handshake between the sidecars per request)
//
// CertificateRotationUnderLoad waits for two renewals of each sidecar;
// RootRotationUnderLoad stages a new root, promotes it and retires the old
// one through the control plane's CA directory. No request may fail.
func TestRotationUnderLoad(t *testing.T) {
	start := time.Now()
	m := newMeshWith(t, meshOptions{
		bridge: "trr", subnet: 1, tcpPort: rotationTCP,
		sidecarArgs: []string{"--cert-ttl", rotationTTL.String(), "--root-check-interval", rootRecheck.String()},
	})
	m.setPeerAuthentication(t, "STRICT")
	m.waitPlaintextRefused(t)
	// The TCP port is meshed too before the load starts.
	framework.Eventually(t, propagation, func() error {
		if _, _, err := m.tcpGet(); err != nil {
			return fmt.Errorf("client → server:%d: %v", rotationTCP, err)
		}
		return nil
	})
	l := m.startLoad(t)
	t.Logf("mesh ready after %s", time.Since(start).Round(time.Millisecond))

	t.Run("CertificateRotationUnderLoad", func(t *testing.T) {
		began := time.Now()
		base := map[*workload]int{}
		for _, w := range []*workload{m.client, m.server} {
			base[w] = renewals(t, w)
		}
		is, err := ca.LoadDir(m.cp.CADir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// The server sidecar's presented certificate, seen from the
		// outsider: its serials show the renewals reach the live listener.
		serials := map[string]bool{}
		framework.Eventually(t, 2*rotationTTL, func() error {
			if chain, err := m.serverChain(t, is); err == nil {
				serials[chain[0].SerialNumber.String()] = true
			}
			for w, n := range base {
				if got := renewals(t, w); got < n+2 {
					return fmt.Errorf("%s: %d renewals so far, want %d", w.name, got-n, 2)
				}
			}
			return nil
		})
		if len(serials) < 2 {
			t.Errorf("the server sidecar presented %d distinct certificates during two renewals, want at least 2", len(serials))
		}
		l.check(t, "certificate rotation")
		t.Logf("two renewals per sidecar in %s; %s", time.Since(began).Round(time.Millisecond), l)
	})

	t.Run("RootRotationUnderLoad", func(t *testing.T) {
		began := time.Now()
		old, err := ca.LoadDir(m.cp.CADir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sidecars := []*workload{m.client, m.server}

		// Stage: both roots trusted. The server's listener accepts a client
		// certificate under the staged root; both sidecars re-read the file.
		bothBefore := logCounts(sidecars, "root certificates loaded", "roots=2")
		res, err := ca.Stage(m.cp.CADir, ca.Staging{}, time.Now())
		if err != nil {
			t.Fatalf("stage: %v", err)
		}
		staged := res.State.Staged
		stagedClient := svid{uris: []string{"spiffe://cluster.local/ns/default/sa/client"}, notBefore: time.Now().Add(-time.Minute), notAfter: time.Now().Add(time.Hour)}.sign(t, staged.Cert, staged.Key)
		framework.Eventually(t, 10*time.Second, func() error {
			for _, w := range sidecars {
				if logCount(w, "root certificates loaded", "roots=2") <= bothBefore[w] {
					return fmt.Errorf("%s has not loaded the two roots", w.name)
				}
			}
			if code, _, err := m.tlsGet(t, stagedClient); err != nil || code != 200 {
				return fmt.Errorf("server refuses a client certificate under the staged root: %d %v", code, err)
			}
			return nil
		})

		// Promote: issuance under the new root. The server presents a
		// certificate under it; the client renews after that, so under it
		// too.
		if _, err := ca.Promote(m.cp.CADir, time.Now()); err != nil {
			t.Fatalf("promote: %v", err)
		}
		framework.Eventually(t, rotationTTL, func() error {
			chain, err := m.serverChain(t, staged)
			if err != nil {
				return err
			}
			if !chainsTo(chain, staged.Root) {
				return errors.New("the server sidecar still presents a certificate under the old root")
			}
			return nil
		})
		clientBase := renewals(t, m.client)
		framework.Eventually(t, rotationTTL, func() error {
			if renewals(t, m.client) <= clientBase {
				return errors.New("the client sidecar has not renewed under the new root yet")
			}
			return nil
		})

		// Retire: the old root is dropped from the file; both sidecars
		// re-read it.
		oneBefore := logCounts(sidecars, "root certificates loaded", "roots=1")
		if _, err := ca.Retire(m.cp.CADir, time.Now()); err != nil {
			t.Fatalf("retire: %v", err)
		}
		framework.Eventually(t, 10*time.Second, func() error {
			for _, w := range sidecars {
				if logCount(w, "root certificates loaded", "roots=1") <= oneBefore[w] {
					return fmt.Errorf("%s has not reloaded the root file after retire", w.name)
				}
			}
			return nil
		})
		// More load on the final state: every TCP request is a handshake
		// the server verifies with the new root alone, so it also shows
		// that the client's certificate is under the new root.
		l.more(t, 300)
		l.finish() // the app's byte count below must be the probe's alone
		l.check(t, "root rotation")

		chain, err := m.serverChain(t, staged)
		if err != nil {
			t.Fatal(err)
		}
		if !chainsTo(chain, staged.Root) || chainsTo(chain, old.Root) {
			t.Errorf("the server sidecar's certificate does not chain to the new root only")
		}
		// A client certificate under the old root is refused before the
		// app sees a byte, and counted as unknown_ca.
		oldClient := svid{uris: []string{"spiffe://cluster.local/ns/default/sa/client"}, notBefore: time.Now().Add(-time.Minute), notAfter: time.Now().Add(time.Hour)}.sign(t, old.Cert, old.Key)
		before := m.server.app.bytes.Load()
		unknownCA := counter(t, m.server, "trellis_listener_tls_handshake_failures_total", `reason="unknown_ca"`)
		if code, body, err := m.tlsGet(t, oldClient); err == nil {
			t.Fatalf("a client certificate under the retired root was served: %d %q", code, body)
		}
		if n := m.server.app.bytes.Load() - before; n != 0 {
			t.Errorf("the app read %d bytes of a refused connection", n)
		}
		framework.Eventually(t, 5*time.Second, func() error {
			if counter(t, m.server, "trellis_listener_tls_handshake_failures_total", `reason="unknown_ca"`) <= unknownCA {
				return errors.New("the server sidecar did not count an unknown_ca refusal")
			}
			return nil
		})
		t.Logf("root rotation in %s; %s", time.Since(began).Round(time.Millisecond), l)
	})

	if d := time.Since(start); d > 90*time.Second {
		t.Errorf("the test took %s, over its 90 s budget", d)
	}
}

// rotationLoad sends requests from the client namespace at a constant rate
// and counts outcomes per kind.
type rotationLoad struct {
	ok, failed [3]atomic.Int64 // by kind
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

var loadKinds = [3]string{"keep-alive", "new connection", "tcp"}

func (m *mesh) startLoad(t *testing.T) *rotationLoad {
	l := &rotationLoad{stop: make(chan struct{})}
	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(m.server.ns.Addr, appPort))
	keepAlive := &http.Transport{DialContext: m.client.ns.DialContext, MaxIdleConnsPerHost: 2}
	fresh := &http.Transport{DialContext: m.client.ns.DialContext, DisableKeepAlives: true}
	httpGet := func(tr *http.Transport) func() error {
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		return func() error {
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			req.Host = host(m.server)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || string(body) != "server 127.0.0.6" {
				return fmt.Errorf("%s %q", resp.Status, body)
			}
			return nil
		}
	}
	tcp := func() error {
		code, body, err := m.tcpGet()
		if err == nil && (code != 200 || body != "server 127.0.0.6") {
			err = fmt.Errorf("%d %q", code, body)
		}
		return err
	}
	for kind, do := range []func() error{httpGet(keepAlive), httpGet(fresh), tcp} {
		for range 2 {
			l.wg.Go(func() {
				tick := time.NewTicker(loadInterval)
				defer tick.Stop()
				for {
					select {
					case <-l.stop:
						return
					case <-tick.C:
					}
					if err := do(); err != nil {
						l.failed[kind].Add(1)
						l.mu.Lock()
						if len(l.errs) < 10 {
							l.errs = append(l.errs, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), loadKinds[kind], err))
						}
						l.mu.Unlock()
						continue
					}
					l.ok[kind].Add(1)
				}
			})
		}
	}
	t.Cleanup(func() {
		l.finish()
		keepAlive.CloseIdleConnections()
	})
	return l
}

func (l *rotationLoad) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *rotationLoad) total() (ok, failed int64) {
	for k := range loadKinds {
		ok += l.ok[k].Load()
		failed += l.failed[k].Load()
	}
	return ok, failed
}

func (l *rotationLoad) String() string {
	var b strings.Builder
	for k, name := range loadKinds {
		fmt.Fprintf(&b, "%s %d ok %d failed; ", name, l.ok[k].Load(), l.failed[k].Load())
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// more waits until n more requests have succeeded.
func (l *rotationLoad) more(t *testing.T, n int64) {
	t.Helper()
	base, _ := l.total()
	framework.Eventually(t, 10*time.Second, func() error {
		if ok, _ := l.total(); ok < base+n {
			return fmt.Errorf("%d of %d more requests so far", ok-base, n)
		}
		return nil
	})
}

// check fails the test if any request failed so far, or if a kind of
// request made no progress.
func (l *rotationLoad) check(t *testing.T, phase string) {
	t.Helper()
	if _, failed := l.total(); failed != 0 {
		l.mu.Lock()
		errs := append([]string(nil), l.errs...)
		l.mu.Unlock()
		t.Errorf("%s: %d requests failed (%s); first errors:\n%s", phase, failed, l, strings.Join(errs, "\n"))
	}
	for k, name := range loadKinds {
		if l.ok[k].Load() < 100 {
			t.Errorf("%s: only %d %s requests succeeded: the load was not sustained", phase, l.ok[k].Load(), name)
		}
	}
}

// tcpGet sends one request from the client namespace to the server's TCP
// port, over a new connection.
func (m *mesh) tcpGet() (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := m.client.ns.DialContext(ctx, "tcp", netip.AddrPortFrom(m.server.ns.Addr, uint16(m.opts.tcpPort)).String())
	if err != nil {
		return 0, "", err
	}
	return get(c, host(m.server))
}

// serverChain connects from the outsider to the server's sidecar with a
// client certificate issued by is, sends one request, and returns the
// chain the sidecar presented.
func (m *mesh) serverChain(t *testing.T, is *ca.Issuer) ([]*x509.Certificate, error) {
	t.Helper()
	cert := svid{uris: []string{"spiffe://cluster.local/ns/default/sa/client"}, notBefore: time.Now().Add(-time.Minute), notAfter: time.Now().Add(time.Hour)}.sign(t, is.Cert, is.Key)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := m.outsider.ns.DialContext(ctx, "tcp", netip.AddrPortFrom(m.server.ns.Addr, appPort).String())
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, &tls.Config{
		Certificates: []tls.Certificate{cert},
		// The chain is checked by the caller, against a chosen root.
		InsecureSkipVerify: true,
		NextProtos:         []string{"istio-http/1.1", "istio", "http/1.1"},
	})
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	chain := c.ConnectionState().PeerCertificates
	if code, body, err := get(c, host(m.server)); err != nil || code != 200 {
		return nil, fmt.Errorf("request with a client certificate under %s: %d %q %v", is.Root.Subject, code, body, err)
	}
	return chain, nil
}

// chainsTo reports whether chain (leaf first) verifies with root alone.
func chainsTo(chain []*x509.Certificate, root *x509.Certificate) bool {
	if len(chain) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: ca.NewBundle(root).Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// renewals reads the sidecar's renewal counter from its metrics port.
func renewals(t *testing.T, w *workload) int {
	t.Helper()
	return int(counter(t, w, identity.MetricRequests, `result="renewed"`))
}

// counter returns the sum of the samples of name carrying every label
// (0 when there is none); it fails the test if the scrape fails.
func counter(t testing.TB, w *workload, name string, labels ...string) float64 {
	t.Helper()
	body, err := metrics(w)
	if err != nil {
		t.Fatalf("scraping %s's sidecar: %v", w.name, err)
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s's sidecar: sample %q: %v", w.name, line, err)
		}
		sum += v
	}
	return sum
}

// logCount counts the sidecar's log lines that contain every part.
func logCount(w *workload, parts ...string) int {
	n := 0
	for _, line := range strings.Split(w.proxy.Output(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func logCounts(ws []*workload, parts ...string) map[*workload]int {
	out := map[*workload]int{}
	for _, w := range ws {
		out[w] = logCount(w, parts...)
	}
	return out
}
