// Package proxyless proves the control plane with an independent xDS
// implementation: real grpc-go clients using google.golang.org/grpc/xds
// resolve xds:/// targets through Trellis and call real gRPC servers, and
// the tests measure where the calls land as configuration changes on disk.
package proxyless
