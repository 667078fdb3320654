// Package framework holds test helpers that start real Trellis components
// in process: the control plane on a watched config directory, gRPC
// backends that report who served a call, and proxyless grpc-go xDS clients
// with Istio-style bootstraps. It is imported only by tests.
package framework
