package manager

import (
	"context"
	"fmt"
	"net"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// TLSTransports returns the Transports of a proxy with an identity:
// raw_buffer is plaintext, envoy.transport_sockets.tls (UpstreamTlsContext)
// is TLS with certificates and trust bundles read from store on every
// handshake; other sockets are unsupported, as with PlaintextOnly. A TLS
// context with an unsupported field rejects the cluster.
func TLSTransports(store secrets.Store) Transports {
	return func(ts *corev3.TransportSocket) (Transport, error) {
		if isRawBuffer(ts) || !tlssock.IsTLS(ts) {
			return PlaintextOnly(ts)
		}
		c, err := tlssock.CompileClient(ts)
		if err != nil {
			return nil, err
		}
		return &tlsTransport{c: c, store: store, mesh: slices.Contains(c.ALPN(), "istio")}, nil
	}
}

// tlsTransport is the client side of a TLS transport socket.
type tlsTransport struct {
	c     *tlssock.Client
	store secrets.Store
	// mesh: the socket offers "istio" (ISTIO_MUTUAL), the only sockets
	// Istio's ALPN override applies to.
	mesh bool
}

// Client runs the TLS handshake on c. A failure is a connect failure (UF)
// whose error carries the reason (Envoy's
// UPSTREAM_TRANSPORT_FAILURE_REASON); like any connect failure it counts
// against the host as a local-origin failure. The peer identity is the
// server certificate's SPIFFE ID when the context has a validation
// context (ISTIO_MUTUAL, SIMPLE and MUTUAL with a CA), "" otherwise: an
// unverified certificate proves nothing.
func (t *tlsTransport) Client(ctx context.Context, c net.Conn, h *host.Host, alpn []string) (net.Conn, string, error) {
	if !t.mesh {
		alpn = nil
	}
	tc, err := t.c.Handshake(ctx, c, t.store, alpn)
	if err != nil {
		return nil, "", fmt.Errorf("upstream TLS to %s: %w", h.Key(), err)
	}
	var peer string
	if t.c.Verifies() {
		cs := tc.ConnectionState()
		peer = tlssock.PeerIdentity(&cs)
	}
	return tc, peer, nil
}

// alpnOverride is Istio's ALPN filter (istio.alpn) as the outbound HTTP
// path applies it: HTTP connections offer istio-http/1.1 or istio-h2 (so
// that the server's sidecar can pick an HTTP filter chain without
// sniffing), then "istio" and the protocol itself. Clusters whose istio
// metadata says alpn_override "false" (DestinationRule TLS other than
// ISTIO_MUTUAL) keep their configured protocols; so do TCP connections
// and TLS sockets that do not offer "istio" themselves.
func alpnOverride(c *clusterv3.Cluster) [pool.NumProtocols][]string {
	var out [pool.NumProtocols][]string
	if c.GetMetadata().GetFilterMetadata()["istio"].GetFields()["alpn_override"].GetStringValue() == "false" {
		return out
	}
	out[pool.HTTP1] = []string{"istio-http/1.1", "istio", "http/1.1"}
	out[pool.HTTP2] = []string{"istio-h2", "istio", "h2"}
	return out
}
