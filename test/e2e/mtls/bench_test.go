//go:build linux

package mtls

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/trellismesh/trellis/test/framework"
)

// BenchmarkSidecarMTLS measures the latency of one request from the client
// namespace to the server's app through both sidecars' captured listeners
// (real `trellis proxy sidecar` processes; bridge trb<pid>, 10.89.2.0/24),
// with mutual TLS between the sidecars (STRICT) and without (DISABLE: the
// client's auto mTLS sends plaintext), over:
//
//	keep-alive      HTTP/1.1 on one kept-alive connection (the sidecars pool theirs)
//	new-conn-http   HTTP/1.1, a new client connection per request
//	new-conn-tcp    the TCP port, a new connection per request: the client
//	                sidecar opens a new upstream connection for each, so under
//	                STRICT each request carries a full mTLS handshake
//
// Requests are sequential: ns/op is the latency. STRICT minus DISABLE is
// what mutual TLS adds.
func BenchmarkSidecarMTLS(b *testing.B) {
	m := newMeshWith(b, meshOptions{bridge: "trb", subnet: 2, tcpPort: rotationTCP})
	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(m.server.ns.Addr, appPort))
	httpGet := func(c *http.Client) error {
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
		if err == nil && (resp.StatusCode != 200 || string(body) != "server 127.0.0.6") {
			err = fmt.Errorf("%s %q", resp.Status, body)
		}
		return err
	}
	for _, mode := range []struct{ peerAuth, policy string }{{"STRICT", "mutual_tls"}, {"DISABLE", "none"}} {
		b.Run(mode.peerAuth, func(b *testing.B) {
			m.setPeerAuthentication(b, mode.peerAuth)
			// Applied on both sides: the server counts the client's
			// requests with the mode's connection_security_policy.
			probe := &http.Client{Transport: &http.Transport{DialContext: m.client.ns.DialContext, DisableKeepAlives: true}, Timeout: 5 * time.Second}
			framework.Eventually(b, propagation, func() error {
				before := counter(b, m.server, "istio_requests_total", `reporter="destination"`, `connection_security_policy="`+mode.policy+`"`)
				if err := httpGet(probe); err != nil {
					return err
				}
				if counter(b, m.server, "istio_requests_total", `reporter="destination"`, `connection_security_policy="`+mode.policy+`"`) <= before {
					return errors.New("the server sidecar did not count the request as " + mode.policy)
				}
				return nil
			})
			keepAlive := &http.Transport{DialContext: m.client.ns.DialContext, MaxIdleConnsPerHost: 1}
			defer keepAlive.CloseIdleConnections()
			for _, kind := range []struct {
				name string
				do   func() error
			}{
				{"keep-alive", func() error { return httpGet(&http.Client{Transport: keepAlive, Timeout: 5 * time.Second}) }},
				{"new-conn-http", func() error { return httpGet(probe) }},
				{"new-conn-tcp", func() error {
					code, body, err := m.tcpGet()
					if err == nil && (code != 200 || body != "server 127.0.0.6") {
						err = fmt.Errorf("%d %q", code, body)
					}
					return err
				}},
			} {
				b.Run(kind.name, func(b *testing.B) {
					for b.Loop() {
						if err := kind.do(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
