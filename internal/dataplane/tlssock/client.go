package tlssock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

// Client is a compiled UpstreamTlsContext; immutable and safe for
// concurrent use.
type Client struct {
	c   *common
	sni string
}

// IsTLS reports whether ts is the TLS transport socket (by type URL, or
// by name when it has no typed_config).
func IsTLS(ts *corev3.TransportSocket) bool {
	if tc := ts.GetTypedConfig(); tc != nil {
		return tc.GetTypeUrl() == UpstreamType || tc.GetTypeUrl() == DownstreamType
	}
	return ts.GetName() == Name
}

// CompileClient compiles a cluster's transport socket
// (envoy.transport_sockets.tls with an UpstreamTlsContext).
func CompileClient(ts *corev3.TransportSocket) (*Client, error) {
	tc := ts.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("transport_socket %q: typed_config is required", ts.GetName())
	}
	if tc.GetTypeUrl() != UpstreamType {
		return nil, fmt.Errorf("transport_socket %q: unsupported type %q", ts.GetName(), tc.GetTypeUrl())
	}
	var u tlsv3.UpstreamTlsContext
	if err := tc.UnmarshalTo(&u); err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	c, err := compileClient(&u)
	if err != nil {
		return nil, fmt.Errorf("transport_socket %q: UpstreamTlsContext: %w", ts.GetName(), err)
	}
	return c, nil
}

func compileClient(u *tlsv3.UpstreamTlsContext) (*Client, error) {
	switch {
	case u.GetAllowRenegotiation():
		return nil, errors.New("allow_renegotiation is not supported")
	case u.GetAutoHostSni():
		return nil, errors.New("auto_host_sni is not supported")
	case u.GetAutoSniSanValidation():
		return nil, errors.New("auto_sni_san_validation is not supported")
	}
	if len(u.GetSni()) > 255 {
		return nil, errors.New("sni: longer than 255 bytes")
	}
	c, err := compileCommon(u.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("common_tls_context: %w", err)
	}
	return &Client{c: c, sni: u.GetSni()}, nil
}

// ALPN returns the configured alpn_protocols.
func (c *Client) ALPN() []string { return append([]string(nil), c.c.alpn...) }

// SNI returns the configured server name.
func (c *Client) SNI() string { return c.sni }

// Verifies reports whether the server's certificate is verified (a
// validation context is configured).
func (c *Client) Verifies() bool { return c.c.validation != nil }

// Handshake runs the client side of a TLS handshake on raw, with the
// client certificate and trust bundle from store. alpn, when not nil,
// replaces the configured protocols (Istio's ALPN override). ctx bounds the
// handshake, waits for secrets included. The caller closes raw on error.
func (c *Client) Handshake(ctx context.Context, raw net.Conn, store secrets.Store, alpn []string) (*tls.Conn, error) {
	cfg := c.c.baseConfig()
	cfg.ServerName = c.sni
	cfg.NextProtos = c.c.alpn
	if alpn != nil {
		cfg.NextProtos = alpn
	}
	// Verification is ours (VerifyConnection): trust bundle from the
	// store, Envoy's SAN matchers instead of host name checks.
	cfg.InsecureSkipVerify = true
	if name := c.c.certName; name != "" {
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return certificate(cri.Context(), store, name)
		}
	}
	if v := c.c.validation; v != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			roots, err := bundle(ctx, store, v.rootsName)
			if err != nil {
				return err
			}
			return v.verify(cs.PeerCertificates, roots, serverPeer(&cs))
		}
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, classify(err)
	}
	return conn, nil
}

// bundle returns the current trust bundle of name, waiting (within ctx)
// for one that is not ready yet.
func bundle(ctx context.Context, store secrets.Store, name string) (*x509.CertPool, error) {
	roots, err := store.Roots(name)
	if errors.Is(err, secrets.ErrNotReady) {
		if werr := store.Wait(ctx, name); werr != nil {
			return nil, fmt.Errorf("trust bundle %q: %w (%v)", name, err, werr)
		}
		roots, err = store.Roots(name)
	}
	if err != nil {
		return nil, fmt.Errorf("trust bundle %q: %w", name, err)
	}
	return roots, nil
}

// PeerIdentity is the first URI SAN of the peer's certificate (its
// SPIFFE ID), "" if it has none.
func PeerIdentity(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 || len(cs.PeerCertificates[0].URIs) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].URIs[0].String()
}
