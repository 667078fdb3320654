package filter

import (
	"net/http"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// Header adapts an http.Header (canonical keys) to route.Headers and
// route.HeaderMutator (lower-case names), so route matching and header
// mutations read and edit a request's or response's headers in place.
type Header http.Header

// Values implements route.Headers.
func (h Header) Values(name string) []string {
	// The lower-case names the route package asks for on every request
	// (its scheme and internal-request checks) skip canonicalisation.
	switch name {
	case "x-forwarded-proto":
		return h["X-Forwarded-Proto"]
	case "x-envoy-internal":
		return h["X-Envoy-Internal"]
	}
	return h[h1wire.CanonicalKey(name)]
}

// Set implements route.HeaderMutator.
func (h Header) Set(name, value string) { http.Header(h).Set(name, value) }

// Add implements route.HeaderMutator.
func (h Header) Add(name, value string) { http.Header(h).Add(name, value) }

// Del implements route.HeaderMutator.
func (h Header) Del(name string) { http.Header(h).Del(name) }
