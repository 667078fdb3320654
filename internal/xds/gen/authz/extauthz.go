package authz

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	extauthztcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// Names Istio uses for CUSTOM actions.
const (
	ExtAuthzHTTPFilterName = "envoy.filters.http.ext_authz"
	ExtAuthzTCPFilterName  = "envoy.filters.network.ext_authz"
	// ExtAuthzShadowPrefix is the shadow_rules_stat_prefix of the RBAC
	// filter that marks the requests a CUSTOM policy selects.
	ExtAuthzShadowPrefix = "istio_ext_authz_"
	// ShadowEffectivePolicyID and ShadowEngineResult are the keys (after
	// the shadow prefix) of the RBAC filter's dynamic metadata.
	ShadowEffectivePolicyID = "shadow_effective_policy_id"
	ShadowEngineResult      = "shadow_engine_result"
)

// defaultExtAuthzTimeout is Istio's timeout for a provider without one.
var defaultExtAuthzTimeout = durationpb.New(600e9)

// extAuthz is one resolved extension provider: its HTTP filter config
// and, for a gRPC provider (which Istio also applies to TCP chains), its
// network filter config.
type extAuthz struct {
	http *extauthzv3.ExtAuthz
	tcp  *extauthztcpv3.ExtAuthz
}

// resolveProvider finds a provider in the mesh config and builds its
// ext_authz configuration, as Istio's extension provider processing.
func (b *builder) resolveProvider(name string) (*extAuthz, error) {
	var found *meshconfig.MeshConfig_ExtensionProvider
	for _, p := range b.opts.ExtensionProviders {
		if p.GetName() == name {
			if found != nil {
				return nil, fmt.Errorf("extension provider %q is declared twice", name)
			}
			found = p
		}
	}
	if found == nil {
		return nil, fmt.Errorf("extension provider %q is not declared in meshConfig.extensionProviders", name)
	}
	switch p := found.GetProvider().(type) {
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
		return b.extAuthzHTTP(p.EnvoyExtAuthzHttp)
	case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
		return b.extAuthzGRPC(p.EnvoyExtAuthzGrpc)
	}
	return nil, fmt.Errorf("extension provider %q is not an envoyExtAuthzHttp or envoyExtAuthzGrpc provider", name)
}

func (b *builder) providerCluster(service string, port uint32) (cluster, host string, err error) {
	if port < 1 || port > 65535 {
		return "", "", fmt.Errorf("port must be in the range [1, 65535], found: %d", port)
	}
	if service == "" {
		return "", "", errors.New("service must not be empty")
	}
	if b.opts.LookupCluster != nil {
		if c, h, ok := b.opts.LookupCluster(service, port); ok {
			return c, h, nil
		}
	}
	return "", "", fmt.Errorf("service %q with port %d not found", service, port)
}

func parseStatusOnError(s string) (*typev3.HttpStatus, error) {
	if s == "" {
		return nil, nil
	}
	code, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("invalid statusOnError %q: %w", s, err)
	}
	if _, ok := typev3.StatusCode_name[int32(code)]; !ok {
		return nil, fmt.Errorf("unsupported statusOnError %s", s)
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(code)}, nil
}

func (b *builder) extAuthzHTTP(c *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider) (*extAuthz, error) {
	var errs []error
	cluster, host, err := b.providerCluster(c.GetService(), c.GetPort())
	errs = append(errs, err)
	status, err := parseStatusOnError(c.GetStatusOnError())
	errs = append(errs, err)
	if pp := c.GetPathPrefix(); pp != "" {
		if _, err := url.Parse(pp); err != nil {
			errs = append(errs, fmt.Errorf("invalid pathPrefix %q: %w", pp, err))
		}
		if !strings.HasPrefix(pp, "/") {
			errs = append(errs, fmt.Errorf("pathPrefix must begin with `/`, found: %q", pp))
		}
	}
	for _, f := range []struct {
		name   string
		values []string
	}{
		{"includeRequestHeadersInCheck", c.GetIncludeRequestHeadersInCheck()},
		{"includeHeadersInCheck", c.GetIncludeHeadersInCheck()},
		{"headersToDownstreamOnDeny", c.GetHeadersToDownstreamOnDeny()},
		{"headersToDownstreamOnAllow", c.GetHeadersToDownstreamOnAllow()},
		{"headersToUpstreamOnAllow", c.GetHeadersToUpstreamOnAllow()},
	} {
		for _, v := range f.values {
			if v == "*" {
				errs = append(errs, fmt.Errorf("%s: a single wildcard \"*\" is not supported, use a prefix or suffix match", f.name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	svc := &extauthzv3.HttpService{
		PathPrefix: c.GetPathPrefix(),
		ServerUri: &corev3.HttpUri{
			Uri:              "http://" + host,
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster},
			Timeout:          timeoutOrDefault(c.GetTimeout()),
		},
	}
	allowed := headerMatchers(c.GetIncludeRequestHeadersInCheck())
	if allowed == nil {
		allowed = headerMatchers(c.GetIncludeHeadersInCheck())
	}
	var add []*corev3.HeaderValue
	keys := make([]string, 0, len(c.GetIncludeAdditionalHeadersInCheck()))
	for k := range c.GetIncludeAdditionalHeadersInCheck() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add = append(add, &corev3.HeaderValue{Key: k, Value: c.GetIncludeAdditionalHeadersInCheck()[k]})
	}
	if allowed != nil || len(add) > 0 {
		svc.AuthorizationRequest = &extauthzv3.AuthorizationRequest{AllowedHeaders: allowed, HeadersToAdd: add}
	}
	if len(c.GetHeadersToUpstreamOnAllow()) > 0 || len(c.GetHeadersToDownstreamOnDeny()) > 0 || len(c.GetHeadersToDownstreamOnAllow()) > 0 {
		svc.AuthorizationResponse = &extauthzv3.AuthorizationResponse{
			AllowedUpstreamHeaders:        headerMatchers(c.GetHeadersToUpstreamOnAllow()),
			AllowedClientHeaders:          headerMatchers(c.GetHeadersToDownstreamOnDeny()),
			AllowedClientHeadersOnSuccess: headerMatchers(c.GetHeadersToDownstreamOnAllow()),
		}
	}
	return &extAuthz{http: &extauthzv3.ExtAuthz{
		Services:              &extauthzv3.ExtAuthz_HttpService{HttpService: svc},
		TransportApiVersion:   corev3.ApiVersion_V3,
		FailureModeAllow:      c.GetFailOpen(),
		StatusOnError:         status,
		FilterEnabledMetadata: filterEnabled(HTTPFilterName),
		WithRequestBody:       bodySettings(c.GetIncludeRequestBodyInCheck()),
	}}, nil
}

func (b *builder) extAuthzGRPC(c *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider) (*extAuthz, error) {
	cluster, _, err := b.providerCluster(c.GetService(), c.GetPort())
	status, serr := parseStatusOnError(c.GetStatusOnError())
	if err := errors.Join(err, serr); err != nil {
		return nil, err
	}
	grpc := &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
			ClusterName: cluster,
			// "|" is not valid in an authority; Istio substitutes it.
			Authority: strings.ReplaceAll(cluster, "|", "_."),
		}},
		Timeout: timeoutOrDefault(c.GetTimeout()),
	}
	return &extAuthz{
		http: &extauthzv3.ExtAuthz{
			Services:              &extauthzv3.ExtAuthz_GrpcService{GrpcService: grpc},
			TransportApiVersion:   corev3.ApiVersion_V3,
			FailureModeAllow:      c.GetFailOpen(),
			StatusOnError:         status,
			FilterEnabledMetadata: filterEnabled(HTTPFilterName),
			WithRequestBody:       bodySettings(c.GetIncludeRequestBodyInCheck()),
		},
		// Istio's network filter: the same channel and failure mode,
		// counted under "tcp.", gated on the network shadow RBAC.
		tcp: &extauthztcpv3.ExtAuthz{
			StatPrefix:            TCPStatPrefix,
			GrpcService:           grpc,
			TransportApiVersion:   corev3.ApiVersion_V3,
			FailureModeAllow:      c.GetFailOpen(),
			FilterEnabledMetadata: filterEnabled(TCPFilterName),
		},
	}, nil
}

func timeoutOrDefault(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return defaultExtAuthzTimeout
	}
	return d
}

func bodySettings(c *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody) *extauthzv3.BufferSettings {
	if c == nil {
		return nil
	}
	return &extauthzv3.BufferSettings{
		MaxRequestBytes:     c.GetMaxRequestBytes(),
		AllowPartialMessage: c.GetAllowPartialMessage(),
		PackAsBytes:         c.GetPackAsBytes(),
	}
}

// headerMatchers turns Istio's header names ("x-a", "x-*", "*-id") into
// case-insensitive exact, prefix and suffix matchers.
func headerMatchers(names []string) *matcherv3.ListStringMatcher {
	if len(names) == 0 {
		return nil
	}
	out := &matcherv3.ListStringMatcher{}
	for _, n := range names {
		m := &matcherv3.StringMatcher{IgnoreCase: true}
		switch {
		case strings.HasPrefix(n, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(n, "*")}
		case strings.HasSuffix(n, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(n, "*")}
		default:
			m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: n}
		}
		out.Patterns = append(out.Patterns, m)
	}
	return out
}

// filterEnabled runs ext_authz only for requests whose shadow RBAC
// evaluation matched a CUSTOM rule (an effective policy id starting with
// istio-ext-authz) in the named RBAC filter's dynamic metadata.
func filterEnabled(rbacFilter string) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: rbacFilter,
		Path: []*matcherv3.MetadataMatcher_PathSegment{{
			Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: ExtAuthzShadowPrefix + ShadowEffectivePolicyID},
		}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: extAuthzPrefix}},
		}},
	}
}

// customTCP are the network filters of the CUSTOM policies on a TCP
// chain when their provider is a gRPC one: a network RBAC filter whose
// shadow rules mark the connections the CUSTOM rules select, then the
// network ext_authz filter gated on that mark (Istio's order and names).
func customTCP(rules *rbacv3.RBAC, ea *extAuthz) []*listenerv3.Filter {
	return []*listenerv3.Filter{
		{Name: TCPFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&rbactcpv3.RBAC{
			ShadowRules: rules, StatPrefix: TCPStatPrefix, ShadowRulesStatPrefix: ExtAuthzShadowPrefix,
		})}},
		{Name: ExtAuthzTCPFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(ea.tcp)}},
	}
}

// customHTTP are the HTTP filters of the CUSTOM policies when their
// provider resolved: an RBAC filter whose shadow rules mark the requests
// the CUSTOM rules select, then the ext_authz filter gated on that mark.
func customHTTP(rules *rbacv3.RBAC, ea *extAuthz) []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{
		{Name: HTTPFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&rbachttpv3.RBAC{
			ShadowRules: rules, ShadowRulesStatPrefix: ExtAuthzShadowPrefix,
		})}},
		{Name: ExtAuthzHTTPFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(ea.http)}},
	}
}
