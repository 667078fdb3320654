//go:build !linux

package capture

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// OriginalDst needs Linux netfilter; elsewhere it reports errors.ErrUnsupported.
func OriginalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, fmt.Errorf("original destination: %w", errors.ErrUnsupported)
}
