package http

import (
	"context"
)

// Drain implements listener.Drainer (Envoy's drain sequence for an HTTP
// connection manager): from now on every HTTP/1 response carries
// "Connection: close" and closes its connection, and HTTP/2 connections
// already open get a GOAWAY (NO_ERROR), finish the streams they have and
// close. The manager keeps serving: connections that arrive later are
// served, HTTP/1 ones with one request each. Drain does not block and
// may be called more than once.
//
// HTTP/2 is served by net/http, which sends GOAWAY only from
// Server.Shutdown; a shut-down server refuses new connections, so Drain
// moves new HTTP/2 connections to a fresh server and shuts the old one
// down in the background (it returns once its last connection closed, at
// the latest when the listener's context ends and closes them).
func (m *Manager) Drain() {
	if !m.h1.draining.CompareAndSwap(false, true) {
		return
	}
	old := m.srv.Swap(m.newServer())
	go func() { _ = old.Shutdown(context.Background()) }()
}
