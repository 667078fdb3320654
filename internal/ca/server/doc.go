// Package server serves Istio's CA API, istio.v1.auth.IstioCertificateService
// /CreateCertificate (types from istio.io/api/security/v1alpha1), over TLS
// on the control plane's secure port (15012), in front of a ca.Authority.
//
//	TLS (serving cert from the CA, client cert requested, not required)
//	  │
//	  ▼
//	CreateCertificate ─► slot (MaxConcurrent, QueueTimeout) ─► Credentials{peer chain, bearer token}
//	  ─► Authenticators in order: mtls │ bootstrap │ kube (seam)  ─► proven identity
//	  ─► ca.Authority.Issue(CSR, identity, TTL) ─► cert_chain [leaf, intermediates..., root]
//
// Authenticators. The first that proves an identity wins; one that finds
// no credential of its kind (ErrNoCredential) lets the next try.
//   - CertAuthenticator (renewal): the client certificate chain verifies
//     against the CA's current trust bundle (every trusted root during a
//     rotation) for clientAuth, the leaf is an SVID (one SPIFFE URI SAN,
//     CA:FALSE) in the CA's trust domain. TLS only requests the certificate
//     (tls.RequestClientCert): verification happens here, against the live
//     bundle, and a caller whose certificate expired can still use a token.
//   - BootstrapAuthenticator (local mode): a per-workload random token from
//     package ca/bootstrap in "authorization: Bearer".
//   - KubeAuthenticator: a Kubernetes service-account JWT checked by a
//     TokenReviewer; kube/cacert.Reviewer implements it with the
//     TokenReview API (audience istio-ca) and internal/discovery wires it
//     on a cluster; nothing here imports client-go.
//
// The certificate carries only the proven identity, whatever the CSR
// asks. Istio's "ImpersonatedIdentity" request metadata (node agents
// asking for other workloads) is refused, as Istio refuses it when no
// trusted node account is configured.
//
// Errors follow Istio's CA: Unauthenticated (opaque message, reason logged)
// when no authenticator proves an identity or impersonation is asked;
// InvalidArgument for a bad CSR or a TTL above the maximum (a TTL <= 0 gets
// the default); Internal for the CA's own failures; ResourceExhausted when
// the request is larger than MaxRequestBytes (64 KiB; gRPC refuses it
// before decoding, so a 10 MB CSR costs no memory) or no slot frees up
// within QueueTimeout. A bad request never affects other requests.
//
// Serving certificate. An ECDSA P-256 key and a certificate issued by the
// same CA, with DNS/IP SANs and no URI SAN, renewed lazily at half its
// lifetime or as soon as the CA issues under another root. Trellis names:
// istiod.<root-ns>.svc (what Istio's agents dial, CA_ADDR), its
// .svc.<domain> form, trellis-discovery.<root-ns>.svc, localhost, 127.0.0.1
// and ::1 for local mode (internal/discovery chooses them). Clients verify
// it with root-cert.pem. TLS 1.2 is the minimum; the handshake must finish
// within 10 s; request headers are capped at 16 KiB.
//
// Limits are per process: MaxConcurrent (32) requests authenticate and sign
// at once, others wait at most QueueTimeout (1 s).
// Per connection (ServerOptions): at most DefaultMaxStreams (100)
// concurrent streams, extra ones refused; a silent peer is pinged after
// 30 s and closed 10 s later; clients may ping every 15 s at most.
//
// xDS over mutual TLS will share this gRPC server on 15012; the TLS config
// then moves to where both services can use it.
package server
