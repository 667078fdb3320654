// Package cors is the envoy.filters.http.cors HTTP filter. Its own config
// (envoy.extensions.filters.http.cors.v3.Cors) has no fields: the policy
// is the route's, merged across levels by the route package
// (route.Route.CORS). Preflight requests (OPTIONS with Origin and
// Access-Control-Request-Method) are answered by the proxy; other requests
// with an allowed Origin get the Access-Control-Allow-* response headers.
package cors

import (
	"fmt"
	"net/http"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"

// Factory builds CORS filters.
type Factory struct{}

// Build validates the (empty) Cors config.
func (Factory) Build(name string, config *anypb.Any) (filter.Filter, error) {
	if config != nil {
		msg := &corsv3.Cors{}
		if err := anypb.UnmarshalTo(config, msg, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("typed_config: %w", err)
		}
		if err := pgv.ValidateAll(msg); err != nil {
			return nil, fmt.Errorf("invalid Cors: %w", err)
		}
	}
	return Filter{}, nil
}

// Filter is the CORS filter.
type Filter struct{}

// Wrap implements filter.Filter.
func (Filter) Wrap(next filter.Handler) filter.Handler {
	return filter.HandlerFunc(func(s *filter.Stream) {
		if s.Route == nil {
			next.ServeStream(s)
			return
		}
		policy := s.Route.CORS(s.Weighted)
		if policy == nil {
			next.ServeStream(s)
			return
		}
		d := policy.Preflight(&s.Routing)
		if d.Respond {
			h := http.Header{}
			for k, vs := range d.Headers {
				h[http.CanonicalHeaderKey(k)] = vs
			}
			s.Respond(filter.Reply{Status: http.StatusOK, Header: h, Details: "cors_response"})
			return
		}
		if d.Origin != "" {
			s.OnResponseHeaders(func(_ int, h http.Header) {
				policy.Apply(&s.Routing, filter.Header(h))
			})
		}
		next.ServeStream(s)
	})
}
