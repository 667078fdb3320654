//go:build !linux

package mtls

import "testing"

func TestMTLS(t *testing.T) {
	t.Fatal("the mTLS end-to-end test needs Linux network namespaces and iptables")
}

func TestRotationUnderLoad(t *testing.T) {
	t.Fatal("the rotation end-to-end test needs Linux network namespaces and iptables")
}
