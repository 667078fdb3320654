//go:build !linux

package sidecar

import "testing"

// TestSidecarBookinfo fails rather than skips where it cannot run: it needs
// Linux network namespaces, veths, a bridge and iptables (as root).
func TestSidecarBookinfo(t *testing.T) {
	t.Fatal("the sidecar end-to-end test needs Linux (network namespaces, veth, bridge, iptables) and root")
}

// TestSidecarBookinfoTProxy: as TestSidecarBookinfo, with TPROXY capture.
func TestSidecarBookinfoTProxy(t *testing.T) {
	t.Fatal("the sidecar end-to-end test needs Linux (network namespaces, veth, bridge, iptables) and root")
}
