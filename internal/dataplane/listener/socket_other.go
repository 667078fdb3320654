//go:build !linux

package listener

import (
	"errors"
	"syscall"
)

// setTransparent fails: IP_TRANSPARENT and the TPROXY target are Linux's.
func setTransparent(syscall.RawConn, bool) error {
	return &SocketOptionError{Option: "transparent", Call: "IP_TRANSPARENT", Err: errors.New("transparent listeners are supported on Linux only")}
}
