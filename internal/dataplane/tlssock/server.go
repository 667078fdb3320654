package tlssock

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

// Server is a compiled DownstreamTlsContext; immutable and safe for
// concurrent use.
type Server struct {
	c             *common
	requireClient bool
	requireSNI    bool
	noTickets     bool
}

// CompileServer compiles a listener filter chain's transport socket
// (envoy.transport_sockets.tls with a DownstreamTlsContext).
func CompileServer(ts *corev3.TransportSocket) (*Server, error) {
	tc := ts.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("transport_socket %q: typed_config is required", ts.GetName())
	}
	if tc.GetTypeUrl() != DownstreamType {
		return nil, fmt.Errorf("transport_socket %q: unsupported type %q", ts.GetName(), tc.GetTypeUrl())
	}
	var d tlsv3.DownstreamTlsContext
	if err := tc.UnmarshalTo(&d); err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	s, err := compileServer(&d)
	if err != nil {
		return nil, fmt.Errorf("transport_socket %q: DownstreamTlsContext: %w", ts.GetName(), err)
	}
	return s, nil
}

func compileServer(d *tlsv3.DownstreamTlsContext) (*Server, error) {
	switch {
	case d.GetSessionTicketKeysType() != nil:
		return nil, errors.New("session_ticket_keys: configured ticket keys are not supported")
	case d.GetSessionTimeout() != nil:
		return nil, errors.New("session_timeout is not supported")
	case d.GetOcspStaplePolicy() != tlsv3.DownstreamTlsContext_LENIENT_STAPLING:
		return nil, fmt.Errorf("ocsp_staple_policy %s is not supported", d.GetOcspStaplePolicy())
	}
	c, err := compileCommon(d.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("common_tls_context: %w", err)
	}
	if c.certName == "" {
		return nil, errors.New("common_tls_context.tls_certificate_sds_secret_configs: a server needs a certificate")
	}
	s := &Server{
		c:             c,
		requireClient: d.GetRequireClientCertificate().GetValue(),
		requireSNI:    d.GetRequireSni().GetValue(),
		noTickets:     d.GetDisableStatelessSessionResumption(),
	}
	if s.requireClient && c.validation == nil {
		return nil, errors.New("require_client_certificate needs a validation context (none is configured)")
	}
	return s, nil
}

// RequiresClientCertificate reports require_client_certificate.
func (s *Server) RequiresClientCertificate() bool { return s.requireClient }

// Handshake runs the server side of a TLS handshake on raw, reading the
// certificate and trust bundle from store. ctx bounds it (a secret that is
// not ready yet is waited for until then). The caller sets deadlines on raw
// as well, and closes raw on error.
func (s *Server) Handshake(ctx context.Context, raw net.Conn, store secrets.Store) (*tls.Conn, error) {
	conn := tls.Server(raw, s.config(store))
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, classify(err)
	}
	return conn, nil
}

// config is the tls.Config of one handshake: the certificate is looked up
// and the protocols chosen when the ClientHello is in.
func (s *Server) config(store secrets.Store) *tls.Config {
	cfg := s.c.baseConfig()
	cfg.SessionTicketsDisabled = s.noTickets
	switch {
	case s.requireClient:
		cfg.ClientAuth = tls.RequireAnyClientCert
	case s.c.validation != nil:
		cfg.ClientAuth = tls.RequestClientCert
	}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if s.requireSNI && hello.ServerName == "" {
			return nil, &HandshakeError{Reason: ReasonNoSNI, Err: errors.New("require_sni: the client sent no server name")}
		}
		cert, err := certificate(hello.Context(), store, s.c.certName)
		if err != nil {
			return nil, err
		}
		out := cfg.Clone()
		out.GetConfigForClient = nil
		out.Certificates = []tls.Certificate{*cert}
		out.NextProtos = selectALPN(s.c.alpn, hello.SupportedProtos)
		if v := s.c.validation; v != nil {
			ctx := hello.Context()
			out.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					if s.requireClient {
						return errNoPeerCert
					}
					return nil
				}
				roots, err := bundle(ctx, store, v.rootsName)
				if err != nil {
					return err
				}
				return v.verify(cs.PeerCertificates, roots, clientPeer)
			}
		}
		return out, nil
	}
	return cfg
}

// selectALPN returns the first server protocol the client offers, as the
// only one to negotiate, or none: unlike crypto/tls, Envoy completes a
// handshake without ALPN when there is no protocol in common.
func selectALPN(server, client []string) []string {
	for _, p := range server {
		if slices.Contains(client, p) {
			return []string{p}
		}
	}
	return nil
}

// certificate returns the current certificate of name, waiting (within
// ctx) for one that is not ready yet.
func certificate(ctx context.Context, store secrets.Store, name string) (*tls.Certificate, error) {
	cert, err := store.Certificate(name)
	if errors.Is(err, secrets.ErrNotReady) {
		if werr := store.Wait(ctx, name); werr != nil {
			return nil, fmt.Errorf("certificate %q: %w (%v)", name, err, werr)
		}
		cert, err = store.Certificate(name)
	}
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", name, err)
	}
	return cert, nil
}

// Verifies reports whether client certificates are verified (a
// validation context is configured).
func (s *Server) Verifies() bool { return s.c.validation != nil }
