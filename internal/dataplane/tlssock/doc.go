// Package tlssock is the proxy's TLS transport socket: it compiles
// Envoy's DownstreamTlsContext and UpstreamTlsContext
// (envoy.transport_sockets.tls) into immutable values and runs
// handshakes with them, reading certificates and trust bundles from a
// secrets.Store on every handshake, so that a rotated workload
// certificate or root bundle applies to the next connection while
// established connections are left alone.
//
//	DownstreamTlsContext ─CompileServer─► *Server ─Server.Handshake(ctx, conn, store)─► *tls.Conn, Peer
//	UpstreamTlsContext   ─CompileClient─► *Client ─Client.Handshake(ctx, conn, store, alpn)─► *tls.Conn
//	   (errors name the field: the listener's or cluster's NACK)
//
// What is read from common_tls_context:
//
//   - tls_certificate_sds_secret_configs: one SDS name ("default" is the
//     workload SVID), resolved with Store.Certificate. Inline
//     tls_certificates and certificate providers are rejected.
//   - validation_context_sds_secret_config, or combined_validation_context
//     (validation_context_sds_secret_config + default_validation_context):
//     the trust bundle, resolved with Store.Roots, and the SAN matchers of
//     the default context: match_typed_subject_alt_names (URI, DNS,
//     IP_ADDRESS, EMAIL with exact, prefix, suffix, contains, safe_regex,
//     ignore_case) and the legacy match_subject_alt_names (any SAN type).
//     A DNS SAN with a wildcard ("*.example.com") matches an exact matcher
//     of one label below it, as in Envoy. Certificate pinning, CRLs,
//     ACCEPT_UNTRUSTED, expired-certificate acceptance and custom
//     validators are rejected.
//   - alpn_protocols; tls_params min/max protocol version (TLS_AUTO:
//     TLSv1_2 to TLSv1_3) and cipher_suites in Envoy's OpenSSL names
//     (BoringSSL "[A|B]" groups allowed; TLS 1.3 suites are fixed, as in
//     Envoy). ecdh_curves and signature_algorithms are rejected.
//
// Verification: the peer's chain is verified against the bundle for the
// peer's role: extended key usage clientAuth for a client's certificate,
// serverAuth for a server's (a chain without the extension allows both,
// RFC 5280); the leaf's key usage, when present, must have
// digitalSignature (keyEncipherment for a server under TLS 1.2 RSA key
// exchange). A leaf carrying a SPIFFE ID must then be an X.509-SVID:
// exactly one URI SAN, a well-formed SPIFFE ID (lower-case trust domain,
// non-empty path of [A-Za-z0-9._-] segments, no ".", "..", port, user
// info, query, fragment or percent-encoding: an escaped NUL is refused
// like a raw one, which crypto/x509 already fails to parse), CA:FALSE,
// key usage digitalSignature without keyCertSign or cRLSign. Last, its
// SANs are checked against the matchers (at least one SAN must match one
// matcher). Without a validation context the peer certificate is not
// verified (DestinationRule insecureSkipVerify). The server verifies a
// client certificate whenever one is presented and a validation context
// is configured; require_client_certificate refuses clients without one.
//
// ALPN: a server selects the first of its protocols that the client
// offers and, like Envoy (and unlike crypto/tls), completes the handshake
// without ALPN when there is none in common. A client may override its
// configured protocols per connection (Istio's ALPN filter).
//
// Handshake failures are *HandshakeError values with a short Reason
// label: no_client_certificate, unknown_ca, certificate_expired,
// bad_certificate, san_mismatch, protocol_version, no_shared_cipher,
// secret_not_ready, timeout, remote_close, handshake_error.
package tlssock
