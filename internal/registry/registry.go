package registry

import (
	"context"

	"github.com/trellismesh/trellis/internal/model"
)

// Change reports which services changed. EndpointsOnly is true when only
// endpoints changed (the xDS server can then push EDS alone).
type Change struct {
	Services      []model.ServiceKey
	EndpointsOnly bool
}

// Registry is a source of services and endpoints. Returned values are
// immutable and shared: callers must not mutate them.
type Registry interface {
	// Services returns every service, sorted by host then namespace.
	Services() []*model.Service
	// Endpoints returns the endpoints of a service.
	Endpoints(key model.ServiceKey) []*model.Endpoint
	// RegisterHandler adds a function called, serially, after each change.
	RegisterHandler(h func(Change))
	// Run blocks until ctx is done.
	Run(ctx context.Context)
	// HasSynced reports whether the initial state is complete.
	HasSynced() bool
}
