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
// Counters (Envoy's names, see rbac.NewStatNames): <stat_prefix>rbac.allowed|denied
// and <stat_prefix>rbac.<shadow_rules_stat_prefix>.shadow_allowed|shadow_denied.
//
// The shadow evaluation is also recorded, as Envoy does, in the
// connection's dynamic metadata under "envoy.filters.network.rbac" (handed
// down the chain in the context, rbac.ContextWithMetadata):
// <shadow_rules_stat_prefix>shadow_engine_result ("allowed" or "denied")
// and, when a shadow policy matched,
// <shadow_rules_stat_prefix>shadow_effective_policy_id. Istio's CUSTOM
// action on TCP gates the network ext_authz filter on the latter
// (package dataplane/tcp/extauthz).
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
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
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
	if err := pgv.ValidateAll(msg); err != nil {
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
	h.shadowResultKey = msg.GetShadowRulesStatPrefix() + rbac.ShadowEngineResult
	h.shadowPolicyKey = msg.GetShadowRulesStatPrefix() + rbac.ShadowEffectivePolicyID
	return h, nil
}

// Handler is a compiled network RBAC filter; Wrap puts it in front of the
// rest of the chain.
type Handler struct {
	rules, shadow *rbac.Engine
	stats         rbac.Stats
	names         rbac.StatNames
	next          listener.ConnHandler
	// shadowResultKey and shadowPolicyKey are the dynamic metadata keys
	// of the shadow evaluation.
	shadowResultKey, shadowPolicyKey string
}

// MetadataNamespace is the dynamic metadata namespace the filter writes.
const MetadataNamespace = "envoy.filters.network.rbac"

// Wrap implements listener.Wrapper.
func (h *Handler) Wrap(next listener.ConnHandler) listener.ConnHandler {
	c := *h
	c.next = next
	return &c
}

// Serve implements listener.ConnHandler: it decides, then hands the
// connection on or returns (the listener closes it).
func (h *Handler) Serve(ctx context.Context, c *listener.Conn) {
	in := InputOf(c)
	in.Metadata = rbac.MetadataFromContext(ctx)
	shadow, shadowed, allowed := h.decide(&in)
	if shadowed {
		md := in.Metadata
		if md == nil {
			md = rbac.Metadata{}
			ctx = rbac.ContextWithMetadata(ctx, md)
		}
		own := md[MetadataNamespace]
		if own == nil {
			own = map[string]any{}
			md[MetadataNamespace] = own
		}
		own[h.shadowResultKey] = "denied"
		if shadow.Allowed {
			own[h.shadowResultKey] = "allowed"
		}
		if shadow.Policy != "" {
			own[h.shadowPolicyKey] = shadow.Policy
		}
	}
	if !allowed || h.next == nil {
		return
	}
	h.next.Serve(ctx, c)
}

// Allow evaluates the policies for a connection (without dynamic
// metadata) and counts the result.
func (h *Handler) Allow(c *listener.Conn) bool {
	in := InputOf(c)
	_, _, allowed := h.decide(&in)
	return allowed
}

// decide evaluates the shadow rules (counted and returned, shadowed
// reports there are some) and the rules (counted, enforced).
func (h *Handler) decide(in *rbac.Input) (shadow rbac.Decision, shadowed, allowed bool) {
	if h.shadow != nil {
		shadow, shadowed = h.shadow.Evaluate(in), true
		if shadow.Allowed {
			h.stats.Inc(h.names.ShadowAllowed)
		} else {
			h.stats.Inc(h.names.ShadowDenied)
		}
	}
	if h.rules == nil {
		return shadow, shadowed, true
	}
	if h.rules.Evaluate(in).Allowed {
		h.stats.Inc(h.names.Allowed)
		return shadow, shadowed, true
	}
	h.stats.Inc(h.names.Denied)
	return shadow, shadowed, false
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
