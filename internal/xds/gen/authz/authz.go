package authz

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// Names and prefixes Istio uses.
const (
	HTTPFilterName = "envoy.filters.http.rbac"
	TCPFilterName  = "envoy.filters.network.rbac"

	TCPStatPrefix          = "tcp."
	ShadowAllowStatPrefix  = "istio_dry_run_allow_"
	ShadowDenyStatPrefix   = "istio_dry_run_deny_"
	DryRunAnnotation       = "istio.io/dry-run"
	extAuthzPrefix         = "istio-ext-authz"
	badCustomActionSuffix  = "-deny-due-to-bad-CUSTOM-action"
	jwtFilter              = "envoy.filters.http.jwt_authn"
	jwtPayload             = "payload"
	uriTemplateMatcherName = "envoy.path.match.uri_template.uri_template_matcher"
)

// Options are the mesh settings translation depends on.
type Options struct {
	// TrustDomains is the mesh trust domain first, then its aliases.
	TrustDomains []string
	// ExtensionProviders are meshConfig.extensionProviders: CUSTOM
	// policies name one by provider.name.
	ExtensionProviders []*meshconfig.MeshConfig_ExtensionProvider
	// LookupCluster resolves a provider's service ("host" or
	// "namespace/host") and port to its outbound cluster and host. Nil:
	// no provider resolves.
	LookupCluster func(service string, port uint32) (cluster, host string, ok bool)
}

// Filters are the RBAC filters of one workload, in chain order.
type Filters struct {
	// CustomHTTP are the CUSTOM policies' shadow RBAC and ext_authz
	// filters, which Istio places before request authentication.
	CustomHTTP []*hcmv3.HttpFilter
	// HTTP are the RBAC filters (CUSTOM with an unavailable provider,
	// AUDIT, DENY, ALLOW), after request authentication.
	HTTP []*hcmv3.HttpFilter
	// TCP are the network filters of TCP chains, in order: the CUSTOM
	// policies' shadow RBAC and ext_authz (gRPC provider), then the RBAC
	// filters (CUSTOM with an unavailable provider, AUDIT, DENY, ALLOW).
	TCP []*listenerv3.Filter
	// Warnings name the rules, values and providers that were skipped.
	Warnings []string
}

// Build translates the policies of a workload.
func Build(p model.AuthzPolicies, opts Options) Filters {
	b := &builder{opts: opts}
	var out Filters
	for _, forTCP := range []bool{false, true} {
		b.warnings = nil
		var sets []ruleSet
		if len(p.Custom) > 0 {
			set, httpFilters, tcpFilters := b.custom(p.Custom, forTCP)
			sets = append(sets, set)
			out.CustomHTTP = append(out.CustomHTTP, httpFilters...)
			out.TCP = append(out.TCP, tcpFilters...)
		}
		for _, a := range []struct {
			policies []config.Config
			action   rbacv3.RBAC_Action
		}{
			{p.Audit, rbacv3.RBAC_LOG},
			{p.Deny, rbacv3.RBAC_DENY},
			{p.Allow, rbacv3.RBAC_ALLOW},
		} {
			if len(a.policies) > 0 {
				sets = append(sets, b.build(a.policies, a.action, forTCP))
			}
		}
		for _, s := range sets {
			if s.rules == nil && s.shadow == nil {
				continue
			}
			if forTCP {
				out.TCP = append(out.TCP, &listenerv3.Filter{
					Name: TCPFilterName,
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&rbactcpv3.RBAC{
						Rules:                 s.rules,
						StatPrefix:            TCPStatPrefix,
						ShadowRules:           s.shadow,
						ShadowRulesStatPrefix: shadowPrefix(s.shadow),
					})},
				})
			} else {
				out.HTTP = append(out.HTTP, &hcmv3.HttpFilter{
					Name: HTTPFilterName,
					ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&rbachttpv3.RBAC{
						Rules:                 s.rules,
						ShadowRules:           s.shadow,
						ShadowRulesStatPrefix: shadowPrefix(s.shadow),
					})},
				})
			}
		}
		if !forTCP {
			// HTTP and TCP report the same policy problems; keep the TCP
			// pass's extra notes (dropped HTTP-only rules) too.
			out.Warnings = append(out.Warnings, b.warnings...)
		} else {
			for _, w := range b.warnings {
				if strings.Contains(w, "TCP") {
					out.Warnings = append(out.Warnings, w)
				}
			}
		}
	}
	return out
}

type ruleSet struct {
	rules, shadow *rbacv3.RBAC
}

type builder struct {
	opts     Options
	warnings []string
}

func (b *builder) warnf(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

func policyName(c config.Config, i int, prefix string) string {
	return fmt.Sprintf("%sns[%s]-policy[%s]-rule[%d]", prefix, c.Namespace, c.Name, i)
}

func isDryRun(c config.Config) bool { return c.Annotations[DryRunAnnotation] == "true" }

// build translates the policies of one action.
func (b *builder) build(policies []config.Config, action rbacv3.RBAC_Action, forTCP bool) ruleSet {
	enforce := &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
	shadow := &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
	hasEnforce, hasShadow := false, false
	for _, c := range policies {
		target := enforce
		if isDryRun(c) {
			target, hasShadow = shadow, true
		} else {
			hasEnforce = true
		}
		b.addPolicy(target.Policies, c, action, forTCP, "")
	}
	var out ruleSet
	if hasEnforce {
		out.rules = enforce
	}
	if hasShadow {
		out.shadow = shadow
	}
	return out
}

// addPolicy adds the RBAC policies of one AuthorizationPolicy's rules.
func (b *builder) addPolicy(into map[string]*rbacv3.Policy, c config.Config, action rbacv3.RBAC_Action, forTCP bool, prefix string) {
	ap := c.Spec.(*security.AuthorizationPolicy)
	kind := "HTTP"
	if forTCP {
		kind = "TCP"
	}
	for i, r := range ap.GetRules() {
		name := policyName(c, i, prefix)
		if r == nil {
			b.warnf("skipped nil rule %s", name)
			continue
		}
		m, err := newRuleModel(r, c.Namespace)
		if err != nil {
			b.warnf("skipped invalid rule %s: %v", name, err)
			continue
		}
		m.migrateTrustDomain(b.opts.TrustDomains)
		p, err := m.generate(forTCP, action)
		if err != nil {
			b.warnf("skipped rule %s on %s filter chain: %v", name, kind, err)
			continue
		}
		into[name] = p
	}
	if len(ap.GetRules()) == 0 {
		into[policyName(c, 0, prefix)] = matchNever()
	}
}

// custom translates CUSTOM policies. When every enforced CUSTOM policy
// names the same provider and it resolves to an ext_authz provider, HTTP
// chains get the shadow RBAC and ext_authz filters (customHTTP) and TCP
// chains, for a gRPC provider, the network shadow RBAC and ext_authz
// filters (customTCP); TCP chains get nothing for an HTTP provider (as
// Istio). Otherwise the provider is unavailable and Istio denies what the
// CUSTOM rules match: a DENY RBAC over them. Dry-run policies are left
// out.
func (b *builder) custom(policies []config.Config, forTCP bool) (ruleSet, []*hcmv3.HttpFilter, []*listenerv3.Filter) {
	rules := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
	seen := map[string]bool{}
	var providers []string
	for _, c := range policies {
		provider := c.Spec.(*security.AuthorizationPolicy).GetProvider().GetName()
		if !seen[provider] {
			seen[provider] = true
			providers = append(providers, provider)
		}
		if isDryRun(c) {
			continue
		}
		prefix := extAuthzPrefix + "-"
		if provider != "" {
			prefix = extAuthzPrefix + "-" + provider + "-"
		}
		b.addPolicy(rules.Policies, c, rbacv3.RBAC_DENY, forTCP, prefix)
	}
	sort.Strings(providers)
	var ea *extAuthz
	var err error
	if len(providers) != 1 {
		err = fmt.Errorf("the CUSTOM policies of a workload must all use one provider, found %q", providers)
	} else if ea, err = b.resolveProvider(providers[0]); err == nil && forTCP && ea.tcp == nil {
		// An HTTP provider cannot check a TCP connection: Istio ignores it.
		return ruleSet{}, nil, nil
	}
	if err != nil {
		b.warnf("CUSTOM action with provider %s: %v; requests the policies select are denied", strings.Join(quoteAll(providers), ", "), err)
		deny := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
		for name, pol := range rules.Policies {
			deny.Policies[name+badCustomActionSuffix] = pol
		}
		return ruleSet{rules: deny}, nil, nil
	}
	if len(rules.Policies) == 0 {
		return ruleSet{}, nil, nil
	}
	if forTCP {
		return ruleSet{}, nil, customTCP(rules, ea)
	}
	return ruleSet{}, customHTTP(rules, ea), nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}

func shadowPrefix(r *rbacv3.RBAC) string {
	if r == nil {
		return ""
	}
	switch r.GetAction() {
	case rbacv3.RBAC_ALLOW:
		return ShadowAllowStatPrefix
	case rbacv3.RBAC_DENY:
		return ShadowDenyStatPrefix
	}
	return ""
}

// matchNever is the policy of an AuthorizationPolicy without rules.
func matchNever() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{
			NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}},
		}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{
			NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}},
		}}},
	}
}

// toAny packs a filter config deterministically.
func toAny(m proto.Message) *anypb.Any {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: v}
}
