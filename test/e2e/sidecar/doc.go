// Package sidecar is the data plane's end-to-end test with real traffic
// capture: every workload runs in its own network namespace behind
// `trellis proxy iptables`, with `trellis proxy sidecar` as its proxy
// (the binary built once by TestMain, or the one TRELLIS_E2E_BIN names),
// configured by an in-process control plane from a config directory into
// which Istio's Bookinfo VirtualServices (and a few of our own) are written
// one after another; the test measures their effect on real HTTP/1.1,
// HTTP/2 (gRPC), WebSocket, TLS and TCP traffic from real clients.
//
//	root netns: control plane xDS 10.88.0.1:<port> on bridge trl<pid>, test process
//	   │ veth per namespace
//	   ├─ client     10.88.0.10  capture; sidecar (gid 1337); the test's client sockets (root),
//	   │                         curl, and fortio (this test binary re-executed there)
//	   ├─ reviews-v1 10.88.0.11  capture; sidecar; HTTP 0.0.0.0:9080 (+ WebSocket /ws),
//	   │                         gRPC 0.0.0.0:7070, TLS 0.0.0.0:8443 (cert alpha.tls.test)
//	   ├─ reviews-v2 10.88.0.12  ... (cert beta.tls.test)
//	   ├─ reviews-v3 10.88.0.13  ... (cert gamma.tls.test)
//	   └─ tcp-echo   10.88.0.14  capture; sidecar; TCP echo 0.0.0.0:9000
//
// Services (ServiceEntries with workload selectors over WorkloadEntries):
// reviews :9080 http and grpc-echo :7070 GRPC and tls-backend :8443 TLS on
// the reviews workloads, with subsets v1..v3 by version; tcp-echo :9000 tcp.
//
// A request goes: client socket ─(OUTPUT nat → 15001)→ client sidecar
// (original destination → 0.0.0.0_<port> → route → cluster endpoint) ─→
// reviews-vN eth0 ─(PREROUTING nat → 15006)→ its sidecar (inbound chain)
// ─(from 127.0.0.6)→ backend. The sidecars run with GID 1337, so the
// capture rules' --gid-owner 1337 exemption lets their own connections out.
// Clients address reviews-v1 (HTTP) or tcp-echo (gRPC, TLS), where nothing
// listens on those ports, so only the client sidecar's routing can deliver;
// every backend checks that its peer is 127.0.0.6 (the inbound sidecar).
//
// Paths covered (subtests of TestSidecarBookinfo, each setting the
// configuration it needs):
//
//	PlainRoutingThroughBothSidecars        HTTP/1.1 keep-alive, balanced over v1..v3, HCM headers
//	TCPThroughBothSidecars                 tcp_proxy both ways, also when addressed to another IP
//	AllV1, Split50V1V3                     Bookinfo samples: subset routing, 50/50 split ±5 %
//	HeaderJasonV2OthersV3                  header match
//	AbortFault, DelayFault                 fault injection (abort 100 % and 50 % ±5 %, delay 1 s)
//	RetriesHideFlakyBackend                retries on 5xx, and attempts: 0
//	MirrorV1ToV3                           mirroring with the -shadow authority
//	MirrorPercentage25V1ToV3               mirrorPercentage 25: copies 25 % ±5 % of 2,000 requests
//	HTTP1ChunkedBodyStreamedThroughBothSidecars  chunked POST body reaches the backend before it ends
//	OutlierDetectionEjectsFailingEndpoint  consecutive 5xx ejection
//	TCPHalfCloseThroughBothSidecars        client FIN forwarded, server answers after EOF
//	GRPCUnaryThroughBothSidecars           grpc-go unary over h2c, balanced, :authority kept
//	GRPCMetadataRoutingAndStatusAbort      metadata match to subsets; abort grpcStatus UNAVAILABLE
//	GRPCServerStreamingInOrder             200 messages up to 64 KiB, counted and in order
//	GRPCBidiStreamLivingSeconds            bidi stream of 240 messages each way over ≥ 4 s
//	WebSocketEchoThroughBothSidecars       HTTP/1.1 Upgrade, 200 messages each way, in order
//	TLSPassthroughRoutedBySNI              tls sniHosts routes, backends terminate TLS (verified cert)
//	CurlHeaderRoutingJasonV2OthersV3       curl(1): header routing by body
//	CurlFaultAbort500                      curl --fail: exit 22 and 500 from the fault
//	FortioWeightedSplit20_30_50            fortio's client, 2,000 requests, shares ±5 % at the backends
//	ConnectionTracking                     REDIRECT tracks connections, TPROXY none
//	ControlPlaneOutageKeepsServingThenReconnects  (last) control plane stopped: sidecars serve on;
//	                                       restarted on the same address: they reconnect, new VS applies
//
// A client must not connect to a port before its sidecar has the port's
// outbound listener (mesh.waitListener): the connection would be
// tcp-proxied through the passthrough chain to its original destination
// and keep that path for its whole life, as in Envoy; a gRPC client reuses
// that one connection for every call. The services exist before the
// sidecars start for that reason, and the gRPC and TLS clients wait for
// their listener.
//
// The backends and most clients are sockets of the test process opened
// inside the namespaces (framework.Netns.Listen, DialContext), so the test
// sees exactly what each backend received; the proxies, curl and fortio are
// separate processes.
package sidecar
