package listener

import (
	"errors"
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Listener filter names (Envoy's well-known names), used when a filter has
// no typed_config.
const (
	OriginalDstFilterName   = "envoy.filters.listener.original_dst"
	TLSInspectorFilterName  = "envoy.filters.listener.tls_inspector"
	HTTPInspectorFilterName = "envoy.filters.listener.http_inspector"
)

// filterKind is a supported listener filter.
type filterKind int

const (
	kindOriginalDst filterKind = iota
	kindTLSInspector
	kindHTTPInspector
)

// listenerFilter is a compiled listener filter.
type listenerFilter struct {
	kind filterKind
	name string
	// disabled, when set, switches the filter off for connections it
	// matches (filter_disabled).
	disabled *predicate
	// TLS inspector settings.
	maxClientHello    int
	closeOnHelloError bool
}

// compileListenerFilter resolves a listener filter by its typed_config
// type (or, without one, its well-known name) and validates its config.
func compileListenerFilter(f *listenerv3.ListenerFilter) (listenerFilter, error) {
	out := listenerFilter{name: f.GetName()}
	if f.GetConfigDiscovery() != nil {
		return out, errors.New("config_discovery (ECDS) is not supported")
	}
	var msg proto.Message
	tc := f.GetTypedConfig()
	kind, ok := kindOf(tc, f.GetName())
	if !ok {
		if tc != nil {
			return out, fmt.Errorf("unsupported listener filter type %q", tc.GetTypeUrl())
		}
		return out, fmt.Errorf("unsupported listener filter %q (no typed_config)", f.GetName())
	}
	out.kind = kind
	switch kind {
	case kindOriginalDst:
		msg = &originaldstv3.OriginalDst{}
	case kindTLSInspector:
		msg = &tlsinspectorv3.TlsInspector{}
	case kindHTTPInspector:
		msg = &httpinspectorv3.HttpInspector{}
	}
	if tc != nil {
		if err := anypb.UnmarshalTo(tc, msg, proto.UnmarshalOptions{}); err != nil {
			return out, fmt.Errorf("typed_config: %w", err)
		}
	}
	if ti, ok := msg.(*tlsinspectorv3.TlsInspector); ok {
		out.maxClientHello = maxClientHelloSize
		if v := ti.GetMaxClientHelloSize(); v != nil {
			if v.GetValue() > maxClientHelloSize {
				return out, fmt.Errorf("max_client_hello_size of %d is greater than maximum of %d", v.GetValue(), maxClientHelloSize)
			}
			if v.GetValue() < recordHeaderLen {
				return out, fmt.Errorf("max_client_hello_size of %d is too small", v.GetValue())
			}
			out.maxClientHello = int(v.GetValue())
		}
		out.closeOnHelloError = ti.GetCloseConnectionOnClientHelloParsingErrors()
	}
	if p := f.GetFilterDisabled(); p != nil {
		d, err := compilePredicate(p, 0)
		if err != nil {
			return out, fmt.Errorf("filter_disabled: %w", err)
		}
		out.disabled = d
	}
	return out, nil
}

func kindOf(tc *anypb.Any, name string) (filterKind, bool) {
	if tc != nil {
		switch tc.GetTypeUrl() {
		case "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst":
			return kindOriginalDst, true
		case "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector":
			return kindTLSInspector, true
		case "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector":
			return kindHTTPInspector, true
		}
		return 0, false
	}
	switch name {
	case OriginalDstFilterName:
		return kindOriginalDst, true
	case TLSInspectorFilterName:
		return kindTLSInspector, true
	case HTTPInspectorFilterName:
		return kindHTTPInspector, true
	}
	return 0, false
}

// predicate is a compiled ListenerFilterChainMatchPredicate.
type predicate struct {
	op     predicateOp
	rules  []*predicate
	lo, hi int32 // destination_port_range [lo, hi)
}

type predicateOp int

const (
	predAny predicateOp = iota
	predOr
	predAnd
	predNot
	predPortRange
)

// maxPredicateDepth bounds the nesting of filter_disabled predicates.
const maxPredicateDepth = 32

func compilePredicate(p *listenerv3.ListenerFilterChainMatchPredicate, depth int) (*predicate, error) {
	if depth > maxPredicateDepth {
		return nil, fmt.Errorf("predicate nested deeper than %d", maxPredicateDepth)
	}
	switch r := p.GetRule().(type) {
	case *listenerv3.ListenerFilterChainMatchPredicate_AnyMatch:
		if !r.AnyMatch {
			return nil, errors.New("any_match must be true")
		}
		return &predicate{op: predAny}, nil
	case *listenerv3.ListenerFilterChainMatchPredicate_OrMatch:
		return compileSet(predOr, r.OrMatch, depth)
	case *listenerv3.ListenerFilterChainMatchPredicate_AndMatch:
		return compileSet(predAnd, r.AndMatch, depth)
	case *listenerv3.ListenerFilterChainMatchPredicate_NotMatch:
		inner, err := compilePredicate(r.NotMatch, depth+1)
		if err != nil {
			return nil, fmt.Errorf("not_match: %w", err)
		}
		return &predicate{op: predNot, rules: []*predicate{inner}}, nil
	case *listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange:
		rg := r.DestinationPortRange
		if rg == nil {
			return nil, errors.New("destination_port_range is empty")
		}
		return &predicate{op: predPortRange, lo: rg.GetStart(), hi: rg.GetEnd()}, nil
	default:
		return nil, errors.New("predicate has no rule")
	}
}

func compileSet(op predicateOp, set *listenerv3.ListenerFilterChainMatchPredicate_MatchSet, depth int) (*predicate, error) {
	if len(set.GetRules()) < 2 {
		return nil, errors.New("a match set needs at least 2 rules")
	}
	out := &predicate{op: op}
	for i, r := range set.GetRules() {
		c, err := compilePredicate(r, depth+1)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		out.rules = append(out.rules, c)
	}
	return out, nil
}

// matches evaluates the predicate for a connection to port (the
// destination port after original_dst).
func (p *predicate) matches(port uint16) bool {
	switch p.op {
	case predAny:
		return true
	case predOr:
		for _, r := range p.rules {
			if r.matches(port) {
				return true
			}
		}
		return false
	case predAnd:
		for _, r := range p.rules {
			if !r.matches(port) {
				return false
			}
		}
		return true
	case predNot:
		return !p.rules[0].matches(port)
	case predPortRange:
		return int32(port) >= p.lo && int32(port) < p.hi
	}
	return false
}
