// Package rotation is the end-to-end test of certificate and root
// rotation under load, without root: everything runs in the test process
// on loopback.
//
//	control plane (discovery.Server): xDS, CA on the secure port, CA dir followed (rotation.go)
//	   │ CreateCertificate: bootstrap token first, then renewal over mTLS
//	   ├─ sidecar "client" (role/sidecar, identity TTL 20 s)  127.x.y.z
//	   └─ sidecar "server" (role/sidecar, identity TTL 20 s)  127.x.y.w
//	load: HTTP/1.1, keep-alive and fresh connections, ~200 req/s
//	   client ──mTLS (tlssock.Client, client sidecar's secret store: "default", "ROOTCA",
//	            the server's SPIFFE ID required)──► server (tlssock.Server, server sidecar's
//	            store, client certificate required: STRICT)
//
// The mTLS hop runs the transport-socket code the sidecars' listeners and
// clusters run (tlssock reading the sidecars' secret stores per
// handshake), not the listeners themselves: without traffic capture an
// inbound connection has no original destination and cannot reach the
// inbound filter chains (docs/local-mode.md), and capture needs root.
//
// Workload certificates live 20 s instead of the "every minute",
// so that several renewals happen within the test.
package rotation
