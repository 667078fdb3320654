// Package fault is the envoy.filters.http.fault HTTP filter: it delays
// and aborts a share of requests, as Istio's VirtualService fault
// injection configures it.
//
// The filter's own HTTPFault is the default; a route's
// typed_per_filter_config replaces it whole (route.Route.Fault, the most
// specific level, never merged). For each request the fault's conditions
// are checked (headers, downstream_nodes, upstream_cluster,
// max_active_faults), then the delay (flag DI) and then the abort (flag
// FI: a local reply with http_status, or a gRPC trailers-only reply with
// grpc_status), each sampled with its own random value as Envoy does.
// Header-controlled faults and response rate limits are not applied (the
// route package flags them).
package fault

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

// Factory builds fault filters.
type Factory struct{}

// Build decodes and validates the filter's HTTPFault.
func (Factory) Build(name string, config *anypb.Any) (filter.Filter, error) {
	base, err := decode(config)
	if err != nil {
		return nil, err
	}
	return &Filter{base: base}, nil
}

// decode validates an HTTPFault and decodes it with the route package's
// decoder, through a one-route table carrying it as route-configuration
// level typed_per_filter_config, so that the filter's default and the
// routes' overrides are read by the same code.
func decode(config *anypb.Any) (*route.Fault, error) {
	if config == nil {
		return nil, nil
	}
	msg := &faultv3.HTTPFault{}
	if err := anypb.UnmarshalTo(config, msg, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if err := pgv.ValidateAll(msg); err != nil {
		return nil, fmt.Errorf("invalid HTTPFault: %w", err)
	}
	if msg.GetDelay() == nil && msg.GetAbort() == nil {
		return nil, nil
	}
	rc := &routev3.RouteConfiguration{
		TypedPerFilterConfig: map[string]*anypb.Any{route.FaultFilter: config},
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "fault",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}},
			}},
		}},
	}
	t, err := route.Compile(rc)
	if err != nil {
		var re *route.Error
		if errors.As(err, &re) {
			err = re.Err
		}
		return nil, err
	}
	r := t.Match(&route.Request{Method: "GET", Scheme: "http", Authority: "x", Path: "/"})
	return r.Fault(nil), nil
}

// Filter is a compiled fault filter.
type Filter struct {
	base *route.Fault
	// active counts requests with a fault in progress (max_active_faults).
	active atomic.Int64
}

// Wrap implements filter.Filter.
func (f *Filter) Wrap(next filter.Handler) filter.Handler {
	return filter.HandlerFunc(func(s *filter.Stream) {
		if f.inject(s) {
			return
		}
		next.ServeStream(s)
	})
}

// inject applies the fault in force; it reports whether the stream was
// answered (aborted, or the client left during the delay).
func (f *Filter) inject(s *filter.Stream) bool {
	ft := f.base
	if s.Route != nil {
		if rf := s.Route.Fault(s.Weighted); rf != nil {
			ft = rf
		}
	}
	if ft == nil || !ft.Applies(&s.Routing) {
		return false
	}
	if ft.UpstreamCluster != "" && ft.UpstreamCluster != s.Cluster {
		return false
	}
	delay, delayed := ft.DelayFor(s.Rand())
	abort, aborted := ft.AbortFor(s.Rand())
	if !delayed && !aborted {
		return false
	}
	if ft.MaxActiveFaultsSet && f.active.Load() >= int64(ft.MaxActiveFaults) {
		return false
	}
	f.active.Add(1)
	defer f.active.Add(-1)
	if delayed {
		s.SetFlags(filter.DelayInjected)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.Context().Done():
			t.Stop()
			s.Fail()
			return true
		}
	}
	if !aborted {
		return false
	}
	s.SetFlags(filter.FaultInjected)
	body := abort.ResponseBody
	if body == "" {
		body = "fault filter abort"
	}
	r := filter.Reply{Status: abort.HTTPStatus, Body: body, Details: "fault_filter_abort"}
	if abort.GRPC {
		r.Status, r.GRPCStatus, r.GRPCStatusSet = http.StatusOK, int(abort.GRPCStatus), true
	}
	s.Respond(r)
	return true
}
