// Package mtls is the end-to-end test of mesh identity and mutual TLS with
// real traffic capture: a control plane serving its CA and xDS only over
// mutual TLS (the plaintext xDS port is disabled), and real `trellis proxy
// sidecar` processes that obtain their certificates with per-workload
// bootstrap tokens and then fetch their configuration with them.
//
//	root netns: control plane, CA + xDS over mTLS on 10.89.0.1:<port> (bridge trm<pid>)
//	   ├─ client    10.89.0.10  capture; sidecar --service-account client
//	   ├─ server    10.89.0.11  capture; sidecar --service-account server; app :9080
//	   ├─ payments  10.89.0.12  capture; sidecar --service-account intruder (its
//	   │                        WorkloadEntry says payments); app :9080
//	   └─ outsider  10.89.0.13  no sidecar, no capture: a non-mesh client
//
// The apps are HTTP servers of the test process that count every byte they
// accept, so a test can tell that a refused connection never reached them.
// The control plane's mesh configuration has trustDomainAliases
// [old.example]. Subtests of TestMTLS carry the id of the attack of
// SECURITY.md section D they prove (each sets the PeerAuthentication it
// needs; D2–D4 and D6–D8 send raw TLS from outsider to the server's
// sidecar under STRICT, each with one defect, and check that the app read
// nothing and that the sidecar counted the failure under the expected
// reason of trellis_listener_tls_handshake_failures_total):
//
//	MeshedTrafficIsMutualTLS     client → server through both sidecars; the server
//	                             sidecar reports mutual_tls and the client's principal
//	D1_StrictRefusesPlaintext    STRICT: plaintext from outsider is closed, the app sees 0 bytes
//	PermissiveAcceptsBoth        PERMISSIVE: mTLS from client and plaintext from outsider
//	WellFormedClientCertificateAccepted  the control: a certificate crafted like the
//	                             refused ones, without their defect, is served
//	D2_ClientCertificateFromAnotherRoot  unknown_ca
//	D3_ExpiredOrNotYetValid      expired or not-yet-valid leaf; a valid leaf under an
//	                             expired or not-yet-valid intermediate issued by the mesh
//	                             root (the same leaf under a valid intermediate is served)
//	D4_OtherTrustDomainRefusedAliasAccepted  spiffe://evil.example/… and
//	                             spiffe://evilold.example/… refused (san_mismatch);
//	                             spiffe://old.example/… served, the server sidecar
//	                             reports it as source_principal
//	D5_WrongServerIdentityRefused  payments presents the wrong SVID: the client sidecar
//	                             refuses it (503, UF), payments' app sees nothing
//	D6_AmbiguousOrMalformedSAN   two URI SANs, SPIFFE + https URI, only a non-SPIFFE
//	                             URI, a raw NUL in the URI SAN (written as bytes:
//	                             crypto/x509 will not encode it), a percent-encoded NUL,
//	                             a ".." segment
//	D7_LeafCAOrWithoutKeyUsage   CA:TRUE, keyCertSign, no digitalSignature, extended key
//	                             usage serverAuth only (no clientAuth); a leaf without
//	                             extended key usage is served (RFC 5280)
//	D8_WeakProtocolOrCiphers     crypto/tls offering TLS 1.0, 1.1, or TLS 1.2 with only
//	                             RSA-key-exchange, 3DES, RC4 or CBC suites gets the
//	                             server's alert; hand-written ClientHellos (SSL 3.0, NULL,
//	                             export, DES and anonymous suites) get an alert and no
//	                             ServerHello; controls: TLS 1.3, TLS 1.2 with
//	                             ECDHE-ECDSA-AES128-GCM-SHA256, and the hand-written hello
//	                             with that suite are served
//	HandshakeFailuresCounted     every reason above appears in the server's metrics
//	WorkloadGetsOnlyItsOwnIdentity  CreateCertificate with client's token and a CSR for
//	                             another service account issues client's identity
//
// TestRotationUnderLoad builds the same topology on its own bridge
// (10.89.1.0/24) with sidecars run with --cert-ttl 20s (instead of the
// issue's minute, so that renewals happen within the test) and
// --root-check-interval 500ms, and a second server port declared TCP, so
// that each client connection to it is one mTLS handshake between the
// sidecars. Under ~140 req/s from the client namespace (HTTP keep-alive,
// HTTP new connections, TCP new connections), answered by the server's app
// through its inbound sidecar (the app sees 127.0.0.6):
//
//	CertificateRotationUnderLoad  two renewals per sidecar (their metrics), the
//	                              server's presented certificate changes; no request fails
//	RootRotationUnderLoad         ca.Stage → both sidecars load the two roots, the server
//	                              accepts a staged-root client → ca.Promote → the server
//	                              presents a new-root certificate, the client renews →
//	                              ca.Retire → both reload; no request fails; a client
//	                              certificate under the old root is refused (unknown_ca)
//
// BenchmarkSidecarMTLS (10.89.2.0/24) measures request latency through
// both sidecars with STRICT against DISABLE, over kept-alive and new
// connections (docs/benchmarks.md, "mTLS handshake cost").
package mtls
