package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from
// <linux/netfilter_ipv6/ip6_tables.h> (same value as SO_ORIGINAL_DST, at
// level SOL_IPV6).
const ip6tSOOriginalDst = 80

// OriginalDst returns the destination a connection had before netfilter
// redirected it to the proxy (REDIRECT in the nat table), read with
// getsockopt SO_ORIGINAL_DST (IPv4, including IPv4 connections accepted on
// a dual-stack socket) or IP6T_SO_ORIGINAL_DST (IPv6). For a connection
// that was tracked but not redirected it returns the connection's own
// destination; for one not tracked at all, ErrNoOriginalDst.
func OriginalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	local, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok || local == nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: connection has no local TCP address")
	}
	ipv4 := local.IP.To4() != nil
	raw, err := conn.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var dst netip.AddrPort
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		if ipv4 {
			dst, sockErr = originalDst4(int(fd))
		} else {
			dst, sockErr = originalDst6(int(fd))
		}
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	if errors.Is(sockErr, unix.ENOENT) {
		return netip.AddrPort{}, fmt.Errorf("original destination of %s: %w", local, ErrNoOriginalDst)
	}
	if sockErr != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination of %s: %w", local, sockErr)
	}
	return dst, nil
}

// originalDst4 reads a struct sockaddr_in. IPv6Mreq is 20 bytes, enough for
// the 16-byte sockaddr_in the kernel writes.
func originalDst4(fd int) (netip.AddrPort, error) {
	m, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
	}
	b := m.Multiaddr[:] // sockaddr_in: family(2) port(2, big endian) addr(4)
	port := binary.BigEndian.Uint16(b[2:4])
	addr := netip.AddrFrom4([4]byte(b[4:8]))
	return netip.AddrPortFrom(addr, port), nil
}

// originalDst6 reads a struct sockaddr_in6. IPv6MTUInfo (32 bytes) begins
// with a RawSockaddrInet6 (28 bytes), exactly what the kernel writes.
func originalDst6(fd int) (netip.AddrPort, error) {
	info, err := unix.GetsockoptIPv6MTUInfo(fd, unix.SOL_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: %w", err)
	}
	sa := info.Addr
	// The raw struct holds the port's network-order bytes in a uint16.
	var p [2]byte
	binary.NativeEndian.PutUint16(p[:], sa.Port)
	port := binary.BigEndian.Uint16(p[:])
	addr := netip.AddrFrom16(sa.Addr).Unmap()
	return netip.AddrPortFrom(addr, port), nil
}
