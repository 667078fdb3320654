// Package sidecar is the data plane's end-to-end test with real traffic
// capture: every workload runs in its own network namespace behind
// `trellis proxy iptables`, with `trellis proxy sidecar` as its proxy
// (the binary built once by TestMain), configured by an in-process control
// plane from a config directory into which Istio's Bookinfo VirtualServices
// are written one after another; the test measures their effect on real
// HTTP and TCP traffic.
//
//	root netns: control plane xDS 10.88.0.1:<port> on bridge trl<pid>, test process
//	   │ veth per namespace
//	   ├─ client     10.88.0.10  capture; sidecar (gid 1337); test's HTTP/TCP client sockets (root)
//	   ├─ reviews-v1 10.88.0.11  capture; sidecar; HTTP backend 0.0.0.0:9080 (test process socket)
//	   ├─ reviews-v2 10.88.0.12  ...
//	   ├─ reviews-v3 10.88.0.13  ...
//	   └─ tcp-echo   10.88.0.14  capture; sidecar; TCP echo 0.0.0.0:9000
//
// A request goes: client socket ─(OUTPUT nat → 15001)→ client sidecar
// (original destination → 0.0.0.0_9080 → route → cluster endpoint) ─→
// reviews-vN eth0 ─(PREROUTING nat → 15006)→ its sidecar (inbound chain)
// ─(from 127.0.0.6)→ backend. The sidecars run with GID 1337, so the
// capture rules' --gid-owner 1337 exemption lets their own connections out.
//
// The backends and clients are sockets of the test process opened inside
// the namespaces (framework.Netns.Listen, DialContext), so the test sees
// exactly what each backend received; the proxies are separate processes.
package sidecar
