// Package identity is the proxy's identity manager: it obtains the
// workload's X.509 SVID from the mesh CA (Istio's
// istio.v1.auth.IstioCertificateService/CreateCertificate over TLS) and
// keeps it fresh, and it keeps the mesh trust bundle. Package secrets
// serves what it holds as the SDS secrets "default" and "ROOTCA".
//
//	Run (one goroutine, the only writer)
//	  │ every RootCheckInterval: RootCertFile changed? ─► parse ─► publish
//	  │ at renewal time:
//	  ▼
//	fresh ECDSA P-256 key + CSR (URI SAN spiffe://<td>/ns/<ns>/sa/<sa>)
//	  ─► TLS to CAAddress, server verified with RootCertFile ∪ current bundle
//	     proof: current certificate (mTLS client auth) while it is valid,
//	            else "authorization: Bearer <TokenFile>" (bootstrap token)
//	  ─► verifyResponse ─► publish (atomic swap) ─► Certificate/Roots/Ready/Wait
//
// # Trust
//
// The CA is authenticated by RootCertFile (Istio's
// ./var/run/secrets/istio/root-cert.pem; in local mode the CA directory's
// root-cert.pem) and by the current bundle. A response is untrusted input:
// every certificate must parse, at most 8; the leaf must carry exactly the
// requested SPIFFE ID as its only URI SAN, the key this request generated,
// CA:FALSE, key usage digitalSignature without keyCertSign or cRLSign, and
// must verify through the response's intermediates to one of those
// anchors for client authentication and, separately, for server
// authentication (peers check the one their side needs). A rejected
// response counts as a failure: the current certificate stays.
//
// The bundle (ROOTCA) is the response's last element when it is one of the
// anchors (the CA's issuing root) plus every root of RootCertFile, the
// CA's root first. The CA's word alone never adds a root: a new root
// becomes trusted when it is distributed in RootCertFile, which is how
// the CA's rotation works (package ca: Stage writes both roots to
// root-cert.pem, Promote issues under the new one, Retire drops the old),
// so peers with old and new certificates are both accepted throughout.
//
// # Timing
//
// Renewal is due at half of the lifetime left when the certificate
// arrived (CAs backdate NotBefore for clock skew; that part does not
// count), moved by up to ±10 % (RenewJitter) so that proxies started
// together do not renew together. A failed request is retried after
// MinBackoff·2^(n-1), capped at MaxBackoff, scaled by a random factor in
// [½, 1), and never later than half the time the current certificate has
// left. The current certificate is served until it expires; after that
// Certificate and Ready fail (secrets.ErrNotReady) until a new one
// arrives. When the CA refuses the certificate as a credential
// (Unauthenticated: a retired root), or it expired, the next request
// proves the identity with the bootstrap token again.
//
// Wait returns once the first certificate arrived (SDS
// initial_fetch_timeout 0s: listeners and clusters that need it wait).
//
// # Metrics
//
// Metrics is a small interface called from Run; NewPrometheus registers
// trellis_identity_certificate_requests_total{result=issued|renewed|failed}
// and trellis_identity_certificate_expiry_timestamp_seconds.
//
// The package imports no control-plane code: only the CA's API types and
// gRPC stub from istio.io/api.
package identity
