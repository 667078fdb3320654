// Package localonly guards HTTP handlers that must only answer callers on
// this host: debug profiles, admin endpoints, config dumps (SECURITY.md
// E9). Both the control plane and the proxy use it, so it depends on
// nothing but the standard library.
package localonly

import (
	"net"
	"net/http"
	"net/netip"
)

// Wrap refuses, with 403, every request whose remote address is not a
// loopback address (IPv4-mapped loopback included), whatever address the
// server binds.
func Wrap(h http.Handler, what string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip, perr := netip.ParseAddr(host)
		if err != nil || perr != nil || !ip.Unmap().IsLoopback() {
			http.Error(w, what+" only serves local callers", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
