// Package h2raw is a deliberately misbehaving HTTP/2 client for tests of
// the control plane's gRPC ports (SECURITY.md E6): it writes frames as the
// test says, including ones a real client never sends (truncated frames,
// oversized length fields, gRPC messages that claim 4 GiB, ping floods,
// more streams than the server allows), and reads what the server answers.
// It is test support only; no production code imports it.
//
//	test ──Conn (preface, SETTINGS) ──► net.Conn (TCP, or tls.Conn with ALPN h2) ──► gRPC server
//	     ◄── Wait: frames read until one matches, SETTINGS ACKed on the way
package h2raw
