package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// SocketOptions are the options a listener's socket is created with,
// before it is bound. When a listener's options change, its socket is
// kept and changed in place.
type SocketOptions struct {
	// Transparent sets IP_TRANSPARENT (IPV6_TRANSPARENT on IPv6
	// sockets), Envoy's Listener.transparent: the socket receives
	// connections the iptables TPROXY target hands it, whatever their
	// destination, and their local address is that destination. It needs
	// CAP_NET_ADMIN and Linux.
	Transparent bool
}

// ListenFunc creates a socket with opts, binds it to address and listens.
// network is "tcp4", "tcp6" or "tcp" (a dual-stack "::").
type ListenFunc func(network, address string, opts SocketOptions) (net.Listener, error)

// Listen is the default ListenFunc: net.ListenConfig with opts applied
// between socket creation and bind. A failed option is a
// *SocketOptionError.
func Listen(network, address string, opts SocketOptions) (net.Listener, error) {
	lc := net.ListenConfig{}
	if opts.Transparent {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			return setTransparent(c, true)
		}
	}
	return lc.Listen(context.Background(), network, address)
}

// setOptions changes a bound socket's options to opts.
func setOptions(ln net.Listener, opts SocketOptions) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("socket options: %T is not a socket", ln)
	}
	c, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("socket options: %w", err)
	}
	return setTransparent(c, opts.Transparent)
}

// SocketOptionError is a socket option the kernel refused.
type SocketOptionError struct {
	// Option is the listener field, "transparent".
	Option string
	// Call is what failed, "setsockopt IP_TRANSPARENT".
	Call string
	Err  error
}

func (e *SocketOptionError) Error() string {
	msg := e.Option + ": " + e.Call + ": " + e.Err.Error()
	if errors.Is(e.Err, syscall.EPERM) {
		msg += " (needs CAP_NET_ADMIN)"
	}
	return msg
}

func (e *SocketOptionError) Unwrap() error { return e.Err }
