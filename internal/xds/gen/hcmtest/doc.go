// Package hcmtest runs an HttpConnectionManager the generators produced
// through the data plane's real connection manager on a loopback
// listener, for generator tests that check what a configuration does to
// requests (authorization, JWT, ext_authz) rather than how it reads.
//
//	test ──HTTP──► 127.0.0.1:port ──► dataplane/http Manager (the generated
//	               HCM; RDS route "/" → inbound|8000||) ──► Clusters ──► backend
//
// Each connection looks like one the inbound capture listener accepted
// for 10.0.0.9:8000 over plaintext; Serve's conn hook can set the TLS
// facts a real listener would have found (an mTLS peer's identity).
package hcmtest
