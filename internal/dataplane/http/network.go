package http

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// TypeURL is the typed_config type of the network filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// NetworkFilter builds connection managers for the listener package's
// filter chains: register it under TypeURL in a listener.Registry.
type NetworkFilter struct {
	Deps Deps
}

// Build implements listener.NetworkFilters.
func (n NetworkFilter) Build(f *listenerv3.Filter) (listener.ConnHandler, error) {
	tc := f.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("%s: no typed_config", f.GetName())
	}
	h := &hcmv3.HttpConnectionManager{}
	if err := anypb.UnmarshalTo(tc, h, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("%s: typed_config: %w", f.GetName(), err)
	}
	return Compile(h, n.Deps)
}
