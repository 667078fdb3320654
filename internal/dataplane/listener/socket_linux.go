package listener

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setTransparent sets or clears IP_TRANSPARENT on an IPv4 socket,
// IPV6_TRANSPARENT on an IPv6 one (dual-stack included), by the socket's
// own family. Both may be changed on a listening socket: the TPROXY target
// checks the flag per packet, and accepted sockets inherit it.
func setTransparent(c syscall.RawConn, on bool) error {
	call := "setsockopt IP_TRANSPARENT"
	value := 0
	if on {
		value = 1
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
		if domain, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil && domain == unix.AF_INET6 {
			level, opt, call = unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "setsockopt IPV6_TRANSPARENT"
		}
		serr = unix.SetsockoptInt(int(fd), level, opt, value)
	}); err != nil {
		serr = err
	}
	if serr != nil {
		return &SocketOptionError{Option: "transparent", Call: call, Err: serr}
	}
	return nil
}
