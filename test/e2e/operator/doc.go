// Package operator tests the operator commands end to end: a control plane
// runs in the test process (framework.StartControlPlane) on the Bookinfo
// services with Istio's mTLS destination rules and the jason → v2 route; a
// real sidecar (the proxy's sidecar role, in process, on its own loopback
// address) and a raw ADS client that rejects listeners connect to it; then
// `trellis proxy-status` and `trellis proxy-config` run through their cobra
// commands against the control plane's monitoring address and the
// sidecar's admin address, and the tests check the rows they print.
package operator
