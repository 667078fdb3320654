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
// Subtests of TestMTLS (each sets the PeerAuthentication it needs):
//
//	MeshedTrafficIsMutualTLS     client → server through both sidecars; the server
//	                             sidecar reports mutual_tls and the client's principal
//	StrictRefusesPlaintext       STRICT: plaintext from outsider is closed, the app sees 0 bytes
//	PermissiveAcceptsBoth        PERMISSIVE: mTLS from client and plaintext from outsider
//	RefusedClientCertificates    raw TLS from outsider with crafted certificates (other
//	                             root, expired, not yet valid, other trust domain, two
//	                             URI SANs, CA bit) is refused; a well-formed one works;
//	                             handshake failures are counted by reason
//	WrongServerIdentityRefused   payments presents the wrong SVID: the client sidecar
//	                             refuses it (503), payments' app sees nothing
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
