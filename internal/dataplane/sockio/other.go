//go:build !linux

package sockio

import "net"

// Wrap returns c: raw socket I/O is only done on Linux.
func Wrap(c net.Conn) net.Conn { return c }
