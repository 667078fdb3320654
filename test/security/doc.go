// Package security is the end-to-end attack suite of ../shared/SECURITY.md
// (section A and the header variants in TestSecurity; sections B and C in
// TestHardening: smuggling, malformed headers, header limits, HTTP/2
// floods and rapid reset, slowloris): each case a named subtest, run over
// HTTP/1.1 and HTTP/2 (h2c) against real web servers behind a real
// sidecar, under each mesh path normalisation mode. See docs/security.md
// for the case list and what each proves.
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
package security
