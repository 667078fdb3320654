package filter

import (
	"google.golang.org/protobuf/types/known/anypb"
)

// Handler serves one request stream. Filters wrap the next handler; the
// router ends the chain.
type Handler interface {
	ServeStream(s *Stream)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(s *Stream)

// ServeStream implements Handler.
func (f HandlerFunc) ServeStream(s *Stream) { f(s) }

// Filter is one compiled HTTP filter. Its Factory built it from the typed
// config and validated it (Caddy's Provision and Validate in one step);
// the connection manager wraps it around the rest of the chain once, at
// compile time. A filter that holds resources (goroutines, pools)
// implements io.Closer; the connection manager closes it when it is
// replaced (Cleanup).
type Filter interface {
	Wrap(next Handler) Handler
}

// Terminal is implemented by filters that end a chain (the router): their
// Wrap ignores next. A chain must end with exactly one terminal filter.
type Terminal interface {
	Terminal() bool
}

// Factory builds a filter from its http_filters entry: the filter's name
// (the key of typed_per_filter_config) and its typed_config.
type Factory interface {
	Build(name string, config *anypb.Any) (Filter, error)
}

// FactoryFunc adapts a function to Factory.
type FactoryFunc func(name string, config *anypb.Any) (Filter, error)

// Build implements Factory.
func (f FactoryFunc) Build(name string, config *anypb.Any) (Filter, error) { return f(name, config) }

// Registry maps typed_config type URLs
// ("type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault")
// to the factories that build them. It is a value assembled by the caller,
// never a package-level registration table.
type Registry map[string]Factory
