// Package security is the end-to-end attack suite of ../shared/SECURITY.md
// (section A and the header variants in TestSecurity; sections B and C in
// TestHardening: smuggling, malformed headers, header limits, HPACK bomb,
// HTTP/2 floods and rapid reset, slowloris and idle TLS connections, slow
// bodies and readers, connection floods, with the limit counters on the
// sidecar's /stats/prometheus): each case a named subtest, run over
// HTTP/1.1 and HTTP/2 (h2c) against real web servers behind a real
// sidecar, under each mesh path normalisation mode. Section F is TestJWT
// (jwt_test.go: RequestAuthentication with a jwksUri served by the test's
// key server, refreshed every second through the control plane's
// PILOT_JWT_PUB_KEY_REFRESH_INTERVAL knob, and requestPrincipals
// policies; tokens are built in jwtkeys_test.go). A10 and A12 are
// TestAuthzIDs (authz_ids_test.go: the sidecar gets its mesh identity from
// the control plane's CA and callers present client certificates signed
// by it, over mTLS with Istio's ALPN) and TestAuthzIDsGenerated (A12 on
// the generated RBAC). See docs/security.md for the case list and what
// each proves.
//
//	test ──dial from 127.P.Q.1x──► sidecar (in process, sidecar.New/Run)
//	                                 inbound listener 127.P.Q.1:15006 (generated LDS/RDS/CDS)
//	                                 original destination: source 1x → backend port
//	                                 HCM: normalise ─► RBAC (AuthorizationPolicy) ─► router
//	                                 └─► inbound|port|| (ORIGINAL_DST) ─► backend
//	backends on 127.P.Q.1: nginx :8081, apache2 :8082, Go echo :8083,
//	each answering a secret marker under /admin and logging every request
//	control plane: framework.StartControlPlaneWith (mesh pathNormalization),
//	ServiceEntry + WorkloadEntry + AuthorizationPolicy files
//
// No root and no iptables: the sidecar's inbound capture listener is
// dialled directly, and sidecar.Config.OriginalDst stands in for
// SO_ORIGINAL_DST (the client's source address names the port it meant).
// Everything past accept — filter chain match, connection manager, RBAC,
// inbound cluster — is the sidecar's real path. nginx and Apache httpd are
// Debian's packages run in the foreground with generated configurations in
// temporary directories; missing, the test fails saying
// "apt-get install nginx apache2".
//
// B1, B7, B8 and B9 are TestHeaderTrust (hardening_trust_test.go), with
// each backend's own log of the headers it received as the witness:
//   - B1_MeshInternalHeaders (http1, http2): x-forwarded-client-cert, x-envoy-* and x-trellis-* from a client never reach a backend with the client's value.
//   - B7_H2CUpgrade (http1): Upgrade: h2c is never answered 101; served as HTTP/1.1, the backend sees no Upgrade or HTTP2-Settings.
//   - B8_UpgradeThenPipelined (http1): a WebSocket upgrade answered 200 closes the connection; a request behind it, pipelined or sent after, never arrives.
//   - B9_HopByHopProxyHeaders (http1, http2): Connection naming x-forwarded-*, x-request-id does not remove them; h2's connection header is refused.
//
// Section E (E4–E9) is TestControlPlane (controlplane_test.go, helpers in
// controlplane_harness_test.go): `trellis discovery`'s server in process
// with its plaintext xDS, secure (CA and xDS over mutual TLS) and
// monitoring ports; workload certificates come from its CA with bootstrap
// tokens. E4/E5 use grpc-go ADS clients (node metadata against the
// certificate; SDS subscriptions and key material); E6 writes raw HTTP/2
// (internal/xds/server/h2raw) to both gRPC ports, then checks a
// well-behaved client, the heap and the goroutine count; E7 runs the
// proxy's own xDS client (internal/dataplane/xdsclient) with a consumer
// that rejects one cluster, next to one that accepts it; E8 posts
// AdmissionReviews to the validating webhook served over HTTPS in process;
// E9 calls the monitoring port from another network namespace (a bridge
// and a veth pair; root and iproute2, else the test fails saying so).
package security
