// Package framework holds test helpers that start real Trellis components
// in process: the control plane on a watched config directory, gRPC
// backends that report who served a call, and proxyless grpc-go xDS clients
// with Istio-style bootstraps; for end-to-end tests with real capture,
// network namespaces on a bridge (netns_linux.go) and child processes tied
// to the test's life (process_linux.go); and a throwaway certificate
// authority (pki.go) for backends that terminate TLS themselves. It is
// imported only by tests.
package framework
