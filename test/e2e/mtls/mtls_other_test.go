//go:build !linux

package mtls

import "testing"

func TestMTLS(t *testing.T) {
	t.Fatal("the mTLS end-to-end test needs Linux network namespaces and iptables")
}
