package upstream

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
)

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key of
// the upstream HTTP options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

const httpProtocolOptionsType = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// compileHTTP reads the upstream HTTP options: the typed extension if
// present, else the deprecated cluster fields (never both, as in Envoy).
// Options of other extensions (for example TCP protocol options) are left
// to their owners.
func compileHTTP(c *clusterv3.Cluster) (HTTPOptions, error) {
	opts, err := httpProtocolOptions(c.GetTypedExtensionProtocolOptions())
	if err != nil {
		return HTTPOptions{}, err
	}
	legacy := c.GetHttpProtocolOptions() != nil || c.GetHttp2ProtocolOptions() != nil || //nolint:staticcheck // deprecated fields
		c.GetCommonHttpProtocolOptions() != nil || c.GetUpstreamHttpProtocolOptions() != nil || //nolint:staticcheck
		c.GetProtocolSelection() == clusterv3.Cluster_USE_DOWNSTREAM_PROTOCOL //nolint:staticcheck
	if opts != nil && legacy {
		return HTTPOptions{}, fmt.Errorf("typed_extension_protocol_options[%s]: cannot be combined with the deprecated "+
			"http_protocol_options, http2_protocol_options, common_http_protocol_options, "+
			"upstream_http_protocol_options or protocol_selection", HTTPProtocolOptionsKey)
	}
	if opts == nil {
		opts, err = legacyHTTPOptions(c)
		if err != nil {
			return HTTPOptions{}, err
		}
	}
	out := HTTPOptions{IdleTimeout: DefaultIdleTimeout, Upstream: opts.GetUpstreamHttpProtocolOptions()}
	switch {
	case opts.GetUseDownstreamProtocolConfig() != nil:
		d := opts.GetUseDownstreamProtocolConfig()
		out.Protocol, out.HTTP1, out.HTTP2, out.HTTP3 = UseDownstream, d.GetHttpProtocolOptions(), d.GetHttp2ProtocolOptions(), d.GetHttp3ProtocolOptions()
	case opts.GetAutoConfig() != nil:
		a := opts.GetAutoConfig()
		out.Protocol, out.HTTP1, out.HTTP2, out.HTTP3 = Auto, a.GetHttpProtocolOptions(), a.GetHttp2ProtocolOptions(), a.GetHttp3ProtocolOptions()
	case opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil:
		out.Protocol, out.HTTP2 = HTTP2, opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions()
	case opts.GetExplicitHttpConfig().GetHttp3ProtocolOptions() != nil:
		out.Protocol, out.HTTP3 = HTTP3, opts.GetExplicitHttpConfig().GetHttp3ProtocolOptions()
	default:
		out.Protocol, out.HTTP1 = HTTP1, opts.GetExplicitHttpConfig().GetHttpProtocolOptions()
	}
	common := opts.GetCommonHttpProtocolOptions()
	if common.GetIdleTimeout() != nil {
		out.IdleTimeout = common.GetIdleTimeout().AsDuration()
	}
	out.MaxConnectionDuration = durationOr(common.GetMaxConnectionDuration(), 0)
	out.MaxStreamDuration = durationOr(common.GetMaxStreamDuration(), 0)
	out.MaxRequestsPerConnection = common.GetMaxRequestsPerConnection().GetValue()
	if old := c.GetMaxRequestsPerConnection(); old != nil { //nolint:staticcheck // deprecated, still honoured
		if common.GetMaxRequestsPerConnection() != nil {
			return HTTPOptions{}, errors.New("Only one of max_requests_per_connection from Cluster or HttpProtocolOptions can be specified")
		}
		out.MaxRequestsPerConnection = old.GetValue()
	}
	return out, nil
}

// httpProtocolOptions finds and decodes the HttpProtocolOptions extension;
// nil when the cluster has none.
func httpProtocolOptions(m map[string]*anypb.Any) (*httpv3.HttpProtocolOptions, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := m[k]
		if strings.TrimPrefix(a.GetTypeUrl(), "type.googleapis.com/") != httpProtocolOptionsType {
			if k == HTTPProtocolOptionsKey {
				return nil, fmt.Errorf("typed_extension_protocol_options[%s]: unexpected type %q", k, a.GetTypeUrl())
			}
			continue
		}
		opts := &httpv3.HttpProtocolOptions{}
		if err := anypb.UnmarshalTo(a, opts, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options[%s]: %w", k, err)
		}
		if err := pgv.Validate(opts); err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options[%s]: %w", k, err)
		}
		if len(opts.GetHttpFilters()) > 0 {
			return nil, fmt.Errorf("typed_extension_protocol_options[%s].http_filters: upstream HTTP filters are not supported", k)
		}
		return opts, nil
	}
	return nil, nil
}

// legacyHTTPOptions turns the deprecated cluster fields into the typed
// extension, as Envoy does.
func legacyHTTPOptions(c *clusterv3.Cluster) (*httpv3.HttpProtocolOptions, error) {
	h1, h2 := c.GetHttpProtocolOptions(), c.GetHttp2ProtocolOptions() //nolint:staticcheck // deprecated fields
	opts := &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions:   c.GetCommonHttpProtocolOptions(),   //nolint:staticcheck
		UpstreamHttpProtocolOptions: c.GetUpstreamHttpProtocolOptions(), //nolint:staticcheck
	}
	if c.GetProtocolSelection() == clusterv3.Cluster_USE_DOWNSTREAM_PROTOCOL { //nolint:staticcheck
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions: orEmpty(h1), Http2ProtocolOptions: orEmpty(h2),
			},
		}
		return opts, nil
	}
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{}
	switch {
	case h1 != nil && h2 != nil:
		return nil, errors.New("cluster: Both HTTP1 and HTTP2 options may only be configured with non-default 'protocol_selection' values")
	case h2 != nil:
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2}
	default:
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: orEmpty(h1)}
	}
	opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit}
	return opts, nil
}

func orEmpty[T any, P interface{ *T }](p P) P {
	if p == nil {
		return new(T)
	}
	return p
}
