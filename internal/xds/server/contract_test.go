package server

import "github.com/trellismesh/trellis/internal/xds/gen"

// The real generator plugs into the server unchanged.
var _ Generator = (*gen.Generator)(nil)
