// Package h1wire holds the HTTP/1.1 wire-format pieces that the proxy's
// two HTTP/1 codecs share: the downstream server (internal/dataplane/http)
// and the upstream client (internal/dataplane/upstream/pool). Everything
// here is a pure function over bytes or strings, with net/http's
// acceptance rules, and allocates only when a header name must be
// canonicalised and is not one of the common names interned here.
package h1wire
