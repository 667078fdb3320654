package http_test

import (
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

// documentedDefaults are the connection manager's rows of the "Limits"
// table in docs/data-plane.md, written out as the document states them
// (not with the package's constants, so that a changed constant fails
// here until the document follows).
func documentedDefaults() hcm.Effective {
	return hcm.Effective{
		// head over max_request_headers_kb: 60 KiB.
		H1MaxHeadBytes:    60 << 10,
		SrvMaxHeaderBytes: 60 << 10,
		// request headers (slowloris, C6): 10 s.
		H1RequestHeadersTimeout: 10 * time.Second,
		SrvReadHeaderTimeout:    10 * time.Second,
		// HTTP/1 idle connection: 1 h.
		H1IdleTimeout:  time.Hour,
		SrvIdleTimeout: time.Hour,
		// HTTP/2 concurrent streams (C1): 100.
		H2MaxConcurrentStreams: 100,
		// header count (C5): 100.
		MaxHeadersCount: 100,
		// headers with underscores: allowed.
		Underscores: corev3.HttpProtocolOptions_ALLOW,
		// stream idle (C7): 5 min.
		StreamIdleTimeout: 5 * time.Minute,
		// request timeout: none.
		RequestTimeout: 0,
		// HTTP/2 header block (C2): max_request_headers_kb + 4 KiB.
		H2MaxHeaderBlock: 64 << 10,
		// HTTP/2 empty frames (C4): 1 in a row.
		H2MaxEmptyFrames: 1,
		// HTTP/2 PRIORITY frames: 100 × (1 + streams).
		H2MaxPriorityPerStream: 100,
		// HTTP/2 WINDOW_UPDATE frames (C4): 10 per DATA frame sent.
		H2MaxWindowUpdates: 10,
		// HTTP/2 PING/SETTINGS not acknowledged (C4): 1000.
		H2MaxControlFrames: 1000,
	}
}

// limitFieldsSet names the fields of h that the Limits table's defaults
// stand for and that h sets.
func limitFieldsSet(h *hcmv3.HttpConnectionManager) []string {
	var set []string
	add := func(name string, isSet bool) {
		if isSet {
			set = append(set, name)
		}
	}
	add("max_request_headers_kb", h.GetMaxRequestHeadersKb() != nil)
	add("request_headers_timeout", h.GetRequestHeadersTimeout() != nil)
	add("stream_idle_timeout", h.GetStreamIdleTimeout() != nil)
	add("request_timeout", h.GetRequestTimeout() != nil)
	c := h.GetCommonHttpProtocolOptions()
	add("common_http_protocol_options.idle_timeout", c.GetIdleTimeout() != nil)
	add("common_http_protocol_options.max_headers_count", c.GetMaxHeadersCount() != nil)
	add("common_http_protocol_options.headers_with_underscores_action", c.GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_ALLOW)
	o := h.GetHttp2ProtocolOptions()
	add("http2_protocol_options.max_concurrent_streams", o.GetMaxConcurrentStreams() != nil)
	add("http2_protocol_options.max_consecutive_inbound_frames_with_empty_payload", o.GetMaxConsecutiveInboundFramesWithEmptyPayload() != nil)
	add("http2_protocol_options.max_inbound_priority_frames_per_stream", o.GetMaxInboundPriorityFramesPerStream() != nil)
	add("http2_protocol_options.max_inbound_window_update_frames_per_data_frame_sent", o.GetMaxInboundWindowUpdateFramesPerDataFrameSent() != nil)
	add("http2_protocol_options.max_outbound_control_frames", o.GetMaxOutboundControlFrames() != nil)
	return set
}

// generatedManagers returns every HTTP connection manager the control
// plane's listener generator builds for the sleep sidecar of meshConfig
// (outbound and inbound), by listener and filter chain name.
func generatedManagers(t *testing.T) map[string]*hcmv3.HttpConnectionManager {
	t.Helper()
	cfgs := gentest.Files(t, gentest.Bookinfo(), gentest.Sample(t, "bookinfo/networking/destination-rule-all.yaml"), "testdata/mesh.yaml")
	sc := gentest.NewSnapshot(nil, cfgs).Scope(gentest.Proxy("10.0.0.100", "default", map[string]string{"app": "sleep"}))
	out := map[string]*hcmv3.HttpConnectionManager{}
	for _, l := range genlistener.Build(sc) {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if anypb.UnmarshalTo(f.GetTypedConfig(), h, proto.UnmarshalOptions{}) == nil {
					name := l.GetName()
					if fc.GetName() != "" {
						name += "/" + fc.GetName()
					}
					out[name] = h
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("the generator built no HTTP connection manager")
	}
	return out
}

// TestDefaultLimits compiles connection managers that leave the limits
// unset, as the control plane sends them for a default sidecar, and
// checks that what the compiled manager enforces is what the Limits
// table of docs/data-plane.md documents. No test waits for a default to
// elapse; the timeouts' behaviour is shown with short explicit values in
// TestLimitStats and TestHeaderLimits.
func TestDefaultLimits(t *testing.T) {
	router := `{"name": "envoy.filters.http.router", "typed_config": ` + routerAny + `}`
	type tc struct {
		name    string
		h       *hcmv3.HttpConnectionManager
		wantSet []string // limit fields the configuration sets
		want    hcm.Effective
	}
	cases := []tc{
		{
			name: "every limit field absent",
			h:    hcmJSON(t, `{`+filters(router)+`}`),
			want: documentedDefaults(),
		},
		{
			name: "option messages present but empty",
			h: hcmJSON(t, `{"common_http_protocol_options": {}, "http_protocol_options": {}, "http2_protocol_options": {}, `+
				filters(router)+`}`),
			want: documentedDefaults(),
		},
		{
			// The defaults must not be constants the reader returns
			// whatever the configuration says.
			name: "explicit values",
			h: hcmJSON(t, `{
			  "max_request_headers_kb": 8,
			  "request_headers_timeout": "0s",
			  "stream_idle_timeout": "7s",
			  "request_timeout": "9s",
			  "common_http_protocol_options": {"idle_timeout": "11s", "max_headers_count": 20, "headers_with_underscores_action": "REJECT_REQUEST"},
			  "http2_protocol_options": {"max_concurrent_streams": 7, "max_consecutive_inbound_frames_with_empty_payload": 3,
			    "max_inbound_priority_frames_per_stream": 4, "max_inbound_window_update_frames_per_data_frame_sent": 5, "max_outbound_control_frames": 6},
			  `+filters(router)+`}`),
			wantSet: []string{
				"max_request_headers_kb", "request_headers_timeout", "stream_idle_timeout", "request_timeout",
				"common_http_protocol_options.idle_timeout", "common_http_protocol_options.max_headers_count",
				"common_http_protocol_options.headers_with_underscores_action",
				"http2_protocol_options.max_concurrent_streams",
				"http2_protocol_options.max_consecutive_inbound_frames_with_empty_payload",
				"http2_protocol_options.max_inbound_priority_frames_per_stream",
				"http2_protocol_options.max_inbound_window_update_frames_per_data_frame_sent",
				"http2_protocol_options.max_outbound_control_frames",
			},
			want: hcm.Effective{
				H1MaxHeadBytes: 8 << 10, SrvMaxHeaderBytes: 8 << 10,
				// An explicit 0 disables the request headers timeout.
				H1RequestHeadersTimeout: 0, SrvReadHeaderTimeout: 0,
				H1IdleTimeout: 11 * time.Second, SrvIdleTimeout: 11 * time.Second,
				H2MaxConcurrentStreams: 7,
				MaxHeadersCount:        20,
				Underscores:            corev3.HttpProtocolOptions_REJECT_REQUEST,
				StreamIdleTimeout:      7 * time.Second,
				RequestTimeout:         9 * time.Second,
				H2MaxHeaderBlock:       12 << 10,
				H2MaxEmptyFrames:       3,
				H2MaxPriorityPerStream: 4,
				H2MaxWindowUpdates:     5,
				H2MaxControlFrames:     6,
			},
		},
	}
	// The control plane's own output. Like Istio's sidecars, it sets
	// stream_idle_timeout to 0 (no stream idle timeout) and no other
	// limit field: every other limit is the documented default.
	gen := generatedManagers(t)
	names := make([]string, 0, len(gen))
	for n := range gen {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		want := documentedDefaults()
		want.StreamIdleTimeout = 0
		cases = append(cases, tc{name: "generated " + n, h: gen[n], wantSet: []string{"stream_idle_timeout"}, want: want})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := limitFieldsSet(c.h); !slices.Equal(got, c.wantSet) {
				t.Fatalf("limit fields set: %q, want %q", got, c.wantSet)
			}
			m, err := hcm.Compile(c.h, hcm.Deps{Upstream: newTestUpstream(t), Routes: &hcm.RouteTables{}})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			t.Cleanup(func() { m.Close() })
			if got := hcm.EffectiveLimits(m); got != c.want {
				t.Errorf("effective limits\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}
