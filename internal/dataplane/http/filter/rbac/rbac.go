// Package rbac is the envoy.filters.http.rbac HTTP filter: it evaluates the
// compiled RBAC policies (package dataplane/rbac) against each request, as
// Istio's AuthorizationPolicy generates them for inbound HTTP.
//
// The filter's shadow_rules are evaluated first and only counted
// (http.rbac.<shadow_rules_stat_prefix>.shadow_allowed|shadow_denied; the
// rules count http.rbac.allowed|denied: Envoy's names without the
// connection manager's stat prefix, which a filter factory is not told)
// and
// recorded, as Envoy does, in the stream's dynamic metadata under
// "envoy.filters.http.rbac": <shadow_rules_stat_prefix>shadow_engine_result
// ("allowed" or "denied") and, when a shadow policy matched,
// <shadow_rules_stat_prefix>shadow_effective_policy_id (its name). Istio's
// CUSTOM action gates the ext_authz filter on the latter. Then
// its rules decide: a denied request gets Envoy's local reply, 403
// "RBAC: access denied", with response code details
// rbac_access_denied_matched_policy[<policy>] (or [none] when an ALLOW
// set matched nothing), and never reaches the next filter. A filter
// without rules enforces nothing. Requests are read after the connection
// manager's sanitising and path normalisation (Stream.Routing), so the
// policy sees the path that routing and the upstream see.
//
// Not supported (rejected at Build): the matcher API (matcher,
// shadow_matcher). Per-route RBACPerRoute overrides are not read; Istio
// does not generate them for sidecars.
package rbac

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"

// Envoy's local reply for a denied request.
const (
	DeniedBody    = "RBAC: access denied"
	detailsPrefix = "rbac_access_denied_matched_policy["
)

// statPrefix is where the HTTP filter's counters live. (Envoy puts them
// under the connection manager's stat prefix, which a filter factory is
// not told.)
const statPrefix = "http."

// Factory builds RBAC filters. Stats is optional.
type Factory struct {
	Stats rbac.Stats
}

// Build decodes, validates and compiles the filter's RBAC.
func (f Factory) Build(name string, config *anypb.Any) (filter.Filter, error) {
	msg := &rbacv3.RBAC{}
	if config != nil {
		if err := anypb.UnmarshalTo(config, msg, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("typed_config: %w", err)
		}
	}
	if err := pgv.ValidateAll(msg); err != nil {
		return nil, fmt.Errorf("invalid RBAC: %w", err)
	}
	if msg.GetMatcher() != nil || msg.GetShadowMatcher() != nil {
		return nil, errors.New("the RBAC matcher API (matcher, shadow_matcher) is not supported")
	}
	out := &Filter{stats: f.Stats}
	if out.stats == nil {
		out.stats = rbac.NopStats{}
	}
	var err error
	if msg.GetRules() != nil {
		if out.rules, err = rbac.Compile(msg.GetRules()); err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
	}
	if msg.GetShadowRules() != nil {
		if out.shadow, err = rbac.Compile(msg.GetShadowRules()); err != nil {
			return nil, fmt.Errorf("shadow_rules: %w", err)
		}
	}
	out.shadowResultKey = msg.GetShadowRulesStatPrefix() + "shadow_engine_result"
	out.shadowPolicyKey = msg.GetShadowRulesStatPrefix() + "shadow_effective_policy_id"
	out.names = rbac.NewStatNames(statPrefix, msg.GetRulesStatPrefix(), msg.GetShadowRulesStatPrefix())
	return out, nil
}

// Filter is a compiled RBAC filter.
type Filter struct {
	rules, shadow *rbac.Engine
	stats         rbac.Stats
	names         rbac.StatNames
	// shadowResultKey and shadowPolicyKey are the dynamic metadata keys
	// of the shadow evaluation.
	shadowResultKey, shadowPolicyKey string
}

// MetadataNamespace is the dynamic metadata namespace the filter writes.
const MetadataNamespace = "envoy.filters.http.rbac"

// Wrap implements filter.Filter.
func (f *Filter) Wrap(next filter.Handler) filter.Handler {
	return filter.HandlerFunc(func(s *filter.Stream) {
		if f.rules == nil && f.shadow == nil {
			next.ServeStream(s)
			return
		}
		in := InputOf(s)
		if f.shadow != nil {
			d := f.shadow.Evaluate(&in)
			result := "denied"
			if d.Allowed {
				f.stats.Inc(f.names.ShadowAllowed)
				result = "allowed"
			} else {
				f.stats.Inc(f.names.ShadowDenied)
			}
			md := f.metadata(s)
			md[f.shadowResultKey] = result
			if d.Policy != "" {
				md[f.shadowPolicyKey] = d.Policy
			}
			in.Metadata = s.Metadata
		}
		if f.rules != nil {
			d := f.rules.Evaluate(&in)
			if !d.Allowed {
				f.stats.Inc(f.names.Denied)
				policy := d.Policy
				if policy == "" {
					policy = "none"
				}
				s.Respond(filter.Reply{
					Status:  http.StatusForbidden,
					Body:    DeniedBody,
					Details: detailsPrefix + policy + "]",
				})
				return
			}
			f.stats.Inc(f.names.Allowed)
		}
		next.ServeStream(s)
	})
}

// metadata returns the stream's metadata of this filter, creating it.
func (f *Filter) metadata(s *filter.Stream) map[string]any {
	if s.Metadata == nil {
		s.Metadata = map[string]map[string]any{}
	}
	md := s.Metadata[MetadataNamespace]
	if md == nil {
		md = map[string]any{}
		s.Metadata[MetadataNamespace] = md
	}
	return md
}

// InputOf collects what policies read from a stream: the routed request,
// the connection's addresses, TLS peer and SNI, the trusted client
// address and the dynamic metadata.
func InputOf(s *filter.Stream) rbac.Input {
	in := rbac.Input{Request: &s.Routing, Metadata: s.Metadata}
	if a, err := netip.ParseAddr(s.Record.Client); err == nil {
		in.Remote = a
	}
	if c := s.Conn; c != nil {
		in.Destination = c.Destination
		in.DirectRemote = c.Source
		in.SNI = c.SNI
		in.Authenticated = c.MutualTLS
		in.PeerIdentity = c.PeerIdentity
		if c.TLS != nil && len(c.TLS.PeerCertificates) > 0 {
			in.PeerCert = c.TLS.PeerCertificates[0]
		}
	} else {
		in.Destination = s.Routing.Local
		in.DirectRemote = s.Routing.Source
	}
	return in
}
