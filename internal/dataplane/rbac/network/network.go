// Package network is the envoy.filters.network.rbac network filter: it
// evaluates the compiled RBAC policies (package dataplane/rbac) once per
// connection, before the terminal filter (tcp_proxy) sees it, as Istio's
// AuthorizationPolicy generates it for inbound TCP filter chains.
//
// A denied connection is closed before any byte is forwarded and before
// the upstream is dialled (Envoy evaluates on the first downstream byte
// with enforcement_type ONE_TIME_ON_FIRST_BYTE; every input a policy can
// read at L4 is known at accept, so the decision is the same and
// server-first upstreams never see the connection either). CONTINUOUS
// enforcement re-evaluates nothing new at L4 and is treated the same.
// Counters: <stat_prefix>rbac.allowed|denied and
// <stat_prefix>rbac.<shadow_rules_stat_prefix>shadow_allowed|shadow_denied.
//
// Not supported (rejected at Build): the matcher API and delay_deny.
package network

import (
	"context"
	"errors"
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"

// Filters builds network RBAC filters (a listener.NetworkFilters). Stats
// is optional.
type Filters struct {
	Stats rbac.Stats
}

// Build implements listener.NetworkFilters.
func (f Filters) Build(lf *listenerv3.Filter) (listener.ConnHandler, error) {
	msg := &rbacv3.RBAC{}
	if err := anypb.UnmarshalTo(lf.GetTypedConfig(), msg, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if err := msg.ValidateAll(); err != nil {
		return nil, fmt.Errorf("invalid RBAC: %w", err)
	}
	if msg.GetMatcher() != nil || msg.GetShadowMatcher() != nil {
		return nil, errors.New("the RBAC matcher API (matcher, shadow_matcher) is not supported")
	}
	if msg.GetDelayDeny() != nil {
		return nil, errors.New("delay_deny is not supported")
	}
	h := &Handler{stats: f.Stats}
	if h.stats == nil {
		h.stats = rbac.NopStats{}
	}
	var err error
	if msg.GetRules() != nil {
		if h.rules, err = rbac.Compile(msg.GetRules()); err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
	}
	if msg.GetShadowRules() != nil {
		if h.shadow, err = rbac.Compile(msg.GetShadowRules()); err != nil {
			return nil, fmt.Errorf("shadow_rules: %w", err)
		}
	}
	h.names = rbac.NewStatNames(msg.GetStatPrefix(), "", msg.GetShadowRulesStatPrefix())
	return h, nil
}

// Handler is a compiled network RBAC filter; Wrap puts it in front of the
// rest of the chain.
type Handler struct {
	rules, shadow *rbac.Engine
	stats         rbac.Stats
	names         rbac.StatNames
	next          listener.ConnHandler
}

// Wrap implements listener.Wrapper.
func (h *Handler) Wrap(next listener.ConnHandler) listener.ConnHandler {
	c := *h
	c.next = next
	return &c
}

// Serve implements listener.ConnHandler: it decides, then hands the
// connection on or returns (the listener closes it).
func (h *Handler) Serve(ctx context.Context, c *listener.Conn) {
	if !h.Allow(c) || h.next == nil {
		return
	}
	h.next.Serve(ctx, c)
}

// Allow evaluates the policies for a connection and counts the result.
func (h *Handler) Allow(c *listener.Conn) bool {
	in := InputOf(c)
	if h.shadow != nil {
		if h.shadow.Evaluate(&in).Allowed {
			h.stats.Inc(h.names.ShadowAllowed)
		} else {
			h.stats.Inc(h.names.ShadowDenied)
		}
	}
	if h.rules == nil {
		return true
	}
	if h.rules.Evaluate(&in).Allowed {
		h.stats.Inc(h.names.Allowed)
		return true
	}
	h.stats.Inc(h.names.Denied)
	return false
}

// InputOf is what an L4 policy reads from a connection.
func InputOf(c *listener.Conn) rbac.Input {
	in := rbac.Input{
		Destination:   c.Destination,
		DirectRemote:  c.Source,
		SNI:           c.SNI,
		Authenticated: c.MutualTLS,
		PeerIdentity:  c.PeerIdentity,
	}
	if c.TLS != nil && len(c.TLS.PeerCertificates) > 0 {
		in.PeerCert = c.TLS.PeerCertificates[0]
	}
	return in
}
