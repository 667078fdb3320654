package listener

import (
	"encoding/json"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/model"
)

// Filter names (Envoy's well-known names).
const (
	httpConnectionManagerFilter = "envoy.filters.network.http_connection_manager"
	faultFilter                 = "envoy.filters.http.fault"
	corsFilter                  = "envoy.filters.http.cors"
	routerFilter                = "envoy.filters.http.router"
	fileAccessLog               = "envoy.access_loggers.file"
)

// trafficClass says which side of the sidecar an HTTP connection manager
// serves (Istio's ListenerClass); filters and headers differ by side.
type trafficClass int

const (
	classOutbound trafficClass = iota
	classInbound
)

// hcmOpts describes one HTTP connection manager.
type hcmOpts struct {
	class      trafficClass
	statPrefix string
	// rds names the route configuration fetched over ADS; when empty,
	// routeConfig is inlined instead.
	rds         string
	routeConfig *routev3.RouteConfiguration
	protocol    model.Protocol
}

// hcmFilter wraps an HTTP connection manager as a network filter stack. It
// is the seam for network filters that go before the HCM on HTTP chains
// (metadata exchange, wasm); today there are none.
func (b *builder) hcmFilter(o hcmOpts) []*listenerv3.Filter {
	return []*listenerv3.Filter{{
		Name:       httpConnectionManagerFilter,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(b.httpConnectionManager(o))},
	}}
}

// httpConnectionManager configures an HCM as Istio does for sidecars: AUTO
// codec, path normalisation from the mesh config, websocket upgrades, no
// stream idle timeout, never trusting the remote address, request IDs on,
// tracing from the mesh config (tracing.go).
func (b *builder) httpConnectionManager(o hcmOpts) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		CodecType:                    hcmv3.HttpConnectionManager_AUTO,
		StatPrefix:                   o.statPrefix,
		UseRemoteAddress:             wrapperspb.Bool(false),
		GenerateRequestId:            wrapperspb.Bool(true),
		StreamIdleTimeout:            durationpb.New(0),
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED,
		UpgradeConfigs:               []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
		HttpFilters:                  b.httpFilters(o),
		AccessLog:                    b.accessLogs(),
		Tracing:                      b.tracing(),
	}
	b.applyPathNormalization(h)
	if o.class == classInbound && o.protocol.IsHTTP2() {
		// gRPC and HTTP/2 servers: accept prior-knowledge HTTP/2.
		h.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	}
	if o.class == classInbound {
		// Istio's sidecar defaults: the peer's certificate details (mTLS
		// chains) reach the application in x-forwarded-client-cert.
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapperspb.Bool(true), Uri: true, Dns: true,
		}
	}
	if o.rds != "" {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
				InitialFetchTimeout:   durationpb.New(0),
				ResourceApiVersion:    corev3.ApiVersion_V3,
			},
			RouteConfigName: o.rds,
		}}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: o.routeConfig}
	}
	return h
}

// applyPathNormalization maps meshConfig.pathNormalization onto the HCM
// (default BASE: RFC 3986 normalisation). Unlike Istio, which forwards
// escaped slashes (%2F, %5C) unchanged below DECODE_AND_MERGE_SLASHES,
// BASE and MERGE_SLASHES reject them with 400 (REJECT_REQUEST): a policy
// on /admin cannot see /%2Fadmin, and backends that decode it would serve
// /admin (SECURITY.md A2, proven by test/security). A mesh whose apps
// need escaped slashes in paths sets DECODE_AND_MERGE_SLASHES.
func (b *builder) applyPathNormalization(h *hcmv3.HttpConnectionManager) {
	switch b.mesh.GetPathNormalization().GetNormalization() {
	case meshconfig.MeshConfig_ProxyPathNormalization_NONE:
		h.NormalizePath = wrapperspb.Bool(false)
	case meshconfig.MeshConfig_ProxyPathNormalization_MERGE_SLASHES:
		h.NormalizePath = wrapperspb.Bool(true)
		h.MergeSlashes = true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_REJECT_REQUEST
	case meshconfig.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
		h.NormalizePath = wrapperspb.Bool(true)
		h.MergeSlashes = true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	default: // DEFAULT, BASE
		h.NormalizePath = wrapperspb.Bool(true)
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_REJECT_REQUEST
	}
}

// httpFilters is the HTTP filter chain of an HCM, in order. It is the seam
// for the filters later issues add, in Istio's order: metadata exchange,
// CUSTOM authz, authn (jwt), authz (RBAC), wasm, then grpc stats and
// Istio stats between cors and the router. Today: the inbound JWT filter
// (listener_authn.go), the inbound RBAC filters (listener_authz.go),
// fault, cors, router.
func (b *builder) httpFilters(o hcmOpts) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if o.class == classInbound {
		out = append(out, b.inboundHTTPCustomAuthz()...) // listener_authz.go
		out = append(out, b.inboundHTTPAuthn()...)       // listener_authn.go
		out = append(out, b.inboundHTTPAuthz()...)
	}
	return append(out,
		&hcmv3.HttpFilter{Name: faultFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&faultv3.HTTPFault{})}},
		&hcmv3.HttpFilter{Name: corsFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&corsv3.Cors{})}},
		&hcmv3.HttpFilter{Name: routerFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})}},
	)
}

// Istio's default access log formats.
const defaultTextLogFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
	`"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ` +
	`"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% ` +
	`%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"

// defaultJSONLogFormat returns Istio's default JSON access log fields.
func defaultJSONLogFormat() map[string]string {
	return map[string]string{
		"start_time":                        "%START_TIME%",
		"route_name":                        "%ROUTE_NAME%",
		"method":                            "%REQ(:METHOD)%",
		"path":                              "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
		"protocol":                          "%PROTOCOL%",
		"response_code":                     "%RESPONSE_CODE%",
		"response_flags":                    "%RESPONSE_FLAGS%",
		"response_code_details":             "%RESPONSE_CODE_DETAILS%",
		"connection_termination_details":    "%CONNECTION_TERMINATION_DETAILS%",
		"bytes_received":                    "%BYTES_RECEIVED%",
		"bytes_sent":                        "%BYTES_SENT%",
		"duration":                          "%DURATION%",
		"upstream_service_time":             "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
		"x_forwarded_for":                   "%REQ(X-FORWARDED-FOR)%",
		"user_agent":                        "%REQ(USER-AGENT)%",
		"request_id":                        "%REQ(X-REQUEST-ID)%",
		"authority":                         "%REQ(:AUTHORITY)%",
		"upstream_host":                     "%UPSTREAM_HOST%",
		"upstream_cluster":                  "%UPSTREAM_CLUSTER_RAW%",
		"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
		"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
		"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
		"requested_server_name":             "%REQUESTED_SERVER_NAME%",
		"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	}
}

// accessLogs returns the access loggers of HCMs and tcp proxies: none by
// default, a file logger when meshConfig.accessLogFile is set, with
// meshConfig.accessLogFormat / accessLogEncoding as Istio reads them.
func (b *builder) accessLogs() []*accesslogv3.AccessLog {
	path := b.mesh.GetAccessLogFile()
	if path == "" {
		return nil
	}
	format := b.mesh.GetAccessLogFormat()
	var sf *corev3.SubstitutionFormatString
	if b.mesh.GetAccessLogEncoding() == meshconfig.MeshConfig_JSON {
		fields := map[string]any{}
		if format == "" || json.Unmarshal([]byte(format), &fields) != nil || len(fields) == 0 {
			fields = map[string]any{}
			for k, v := range defaultJSONLogFormat() {
				fields[k] = v
			}
		}
		st, err := structpb.NewStruct(fields)
		if err != nil {
			st, _ = structpb.NewStruct(nil)
		}
		sf = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: st}}
	} else {
		if format == "" {
			format = defaultTextLogFormat
		} else if !strings.HasSuffix(format, "\n") {
			format += "\n"
		}
		sf = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: format}},
		}}
	}
	cfg := &fileaccesslogv3.FileAccessLog{
		Path:            path,
		AccessLogFormat: &fileaccesslogv3.FileAccessLog_LogFormat{LogFormat: sf},
	}
	return []*accesslogv3.AccessLog{{
		Name:       fileAccessLog,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: toAny(cfg)},
	}}
}
