package accesslog

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
)

// istioText is Istio's default proxy access log format (the control plane
// generates it; internal/xds/gen/listener).
const istioText = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
	`"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ` +
	`"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% ` +
	`%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"

var start = time.Date(2024, 5, 6, 7, 57, 31, 186_123_456, time.UTC)

func record() *filter.Record {
	return &filter.Record{
		Start:        start,
		Duration:     4*time.Millisecond + 300*time.Microsecond,
		Protocol:     "HTTP/1.1",
		Method:       "GET",
		Authority:    "reviews:9080",
		Path:         "/reviews/0?x=1",
		RequestID:    "5f4e1c2a",
		Header:       http.Header{"User-Agent": {"curl/8.0"}, "X-Request-Id": {"5f4e1c2a"}, "X-Forwarded-Proto": {"http"}},
		RouteName:    "default",
		Route:        &route.Route{Name: "default"},
		Cluster:      "outbound|9080||reviews.default.svc.cluster.local",
		UpstreamHost: "10.0.0.7:9080",
		Attempts:     1,
		ResponseCode: 200,
		Details:      "via_upstream",
		BytesSent:    135,
		Source:       netip.MustParseAddrPort("10.0.0.3:37652"),
		Destination:  netip.MustParseAddrPort("10.0.0.9:9080"),
		ResponseHeader: http.Header{
			"X-Envoy-Upstream-Service-Time":    {"3"},
			"Content-Type":                     {"application/grpc"},
			http.TrailerPrefix + "Grpc-Status": {"14"},
		},
		GRPCStatus: 14, GRPCStatusSet: true,
		TraceID: [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	}
}

func TestIstioDefaultText(t *testing.T) {
	f, err := compileText(istioText)
	if err != nil {
		t.Fatal(err)
	}
	got := string(f.append(nil, &entry{rec: record()}))
	want := `[2024-05-06T07:57:31.186Z] "GET /reviews/0?x=1 HTTP/1.1" 200 - via_upstream - "-" 0 135 4 3 "-" "curl/8.0" "5f4e1c2a" ` +
		`"reviews:9080" "10.0.0.7:9080" outbound|9080||reviews.default.svc.cluster.local - 10.0.0.9:9080 10.0.0.3:37652 - default` + "\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestOperators(t *testing.T) {
	rec := record()
	rec.Header.Set("X-Envoy-Original-Path", "/orig")
	rec.Flags = filter.UpstreamConnectionFailure | filter.UpstreamRetryLimitExceeded
	rec.ServerName = "reviews.default.svc.cluster.local"
	for _, tc := range []struct{ format, want string }{
		{"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/orig"},
		{"%REQ(:PATH)%", "/reviews/0?x=1"},
		{"%REQ(:METHOD)% %REQ(:AUTHORITY)% %REQ(:SCHEME)%", "GET reviews:9080 http"},
		{"%REQ(X-MISSING)%", "-"},
		{"%REQ(X-MISSING?USER-AGENT)%", "curl/8.0"},
		{"%REQ(USER-AGENT):4%", "curl"},
		{"%RESP(CONTENT-TYPE)%", "application/grpc"},
		{"%TRAILER(GRPC-STATUS)%", "14"},
		{"%RESPONSE_FLAGS%", "UF,URX"},
		{"%GRPC_STATUS%", "Unavailable"},
		{"%GRPC_STATUS(SNAKE_STRING)%", "UNAVAILABLE"},
		{"%GRPC_STATUS(NUMBER)%", "14"},
		{"%REQUESTED_SERVER_NAME%", "reviews.default.svc.cluster.local"},
		{"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%:%DOWNSTREAM_REMOTE_PORT%", "10.0.0.3:37652"},
		{"%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT%", "10.0.0.9 9080"},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", "10.0.0.3:37652"},
		{"%UPSTREAM_CLUSTER% %UPSTREAM_REQUEST_ATTEMPT_COUNT%", "outbound|9080||reviews.default.svc.cluster.local 1"},
		{"%TRACE_ID%", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"%START_TIME(%Y/%m/%dT%H:%M:%S%z)%", "2024/05/06T07:57:31+0000"},
		{"%START_TIME(%s.%3f)%", "1714982251.186"},
		{"%START_TIME(%f %%)%", "186123456 %"},
		{"plain text", "plain text"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			f, err := compileText(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(f.append(nil, &entry{rec: rec})); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCompileErrors: unknown or malformed operators are errors naming the
// operator (the listener is NACKed).
func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ format, want string }{
		{"%NOT_AN_OPERATOR%", "%NOT_AN_OPERATOR%: unknown command operator"},
		{"%DYNAMIC_METADATA(istio:foo)%", "%DYNAMIC_METADATA%: unknown command operator"},
		{"%REQ%", "%REQ%: needs a header name"},
		{"%RESP(:PATH)%", `":PATH" is not a header RESP can read`},
		{"%DURATION(x)%", "%DURATION%: takes no argument"},
		{"%START_TIME(%Q)%", "unsupported time conversion %Q"},
		{"%BYTES_SENT", "missing closing '%'"},
		{"50% off", "does not start a command operator"},
		{"%REQ(A):0%", "invalid maximum length"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			_, err := compileText(tc.format)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestJSON: Istio's JSON encoding, as Envoy writes it: keys sorted, numbers
// for numeric operators, strings otherwise, null for no value; templates
// mixing text and operators are strings.
func TestJSON(t *testing.T) {
	st, err := structpb.NewStruct(map[string]any{
		"start_time":            "%START_TIME%",
		"method":                "%REQ(:METHOD)%",
		"response_code":         "%RESPONSE_CODE%",
		"bytes_sent":            "%BYTES_SENT%",
		"duration":              "%DURATION%",
		"upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
		"x_forwarded_for":       "%REQ(X-FORWARDED-FOR)%",
		"route":                 "route=%ROUTE_NAME% sni=%REQUESTED_SERVER_NAME%",
		"nested":                map[string]any{"flags": "%RESPONSE_FLAGS%", "n": 1.5, "b": true},
		"user_agent":            "%REQ(USER-AGENT)%",
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := compileJSON(st)
	if err != nil {
		t.Fatal(err)
	}
	rec := record()
	rec.Header.Set("User-Agent", "quote\" \\ \n\x01 é \xff")
	got := string(f.append(nil, &entry{rec: rec}))
	want := `{"bytes_sent":135,"duration":4,"method":"GET","nested":{"b":true,"flags":"-","n":1.5},"response_code":200,` +
		`"route":"route=default sni=-","start_time":"2024-05-06T07:57:31.186Z","upstream_service_time":"3",` +
		`"user_agent":"quote\" \\ \n\u0001 é ` + "\ufffd" + `","x_forwarded_for":null}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Errorf("not JSON: %v", err)
	}

	f.omitEmpty = true
	if got := string(f.append(nil, &entry{rec: rec})); strings.Contains(got, "x_forwarded_for") || !strings.HasSuffix(got, `"user_agent":"quote\" \\ \n\u0001 é `+"\ufffd"+`"}`+"\n") {
		t.Errorf("omit_empty_values: %s", got)
	}
}

// TestTCP: the same operators over a closed tcp_proxy session.
func TestTCP(t *testing.T) {
	f, err := compileText(istioText)
	if err != nil {
		t.Fatal(err)
	}
	s := &tcp.Session{
		Cluster: "outbound|5432||db.default.svc.cluster.local",
		Downstream: &listener.Conn{
			Source:      netip.MustParseAddrPort("10.0.0.3:40000"),
			Destination: netip.MustParseAddrPort("240.240.0.10:5432"),
			SNI:         "db.example.com",
		},
		Upstream: &net.TCPAddr{IP: net.ParseIP("10.0.0.8"), Port: 5432},
		Start:    start,
	}
	got := string(f.append(nil, &entry{sess: s, end: start.Add(1500 * time.Millisecond)}))
	want := `[2024-05-06T07:57:31.186Z] "- - -" 0 - - - "-" 0 0 1500 - "-" "-" "-" "-" "10.0.0.8:5432" ` +
		`outbound|5432||db.default.svc.cluster.local - 240.240.0.10:5432 10.0.0.3:40000 db.example.com -` + "\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestSubstitutionFormat(t *testing.T) {
	sf := &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
		TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%RESPONSE_CODE% %ROUTE_NAME%\n"}},
	}, OmitEmptyValues: true}
	f, err := compileSubstitution(sf)
	if err != nil {
		t.Fatal(err)
	}
	rec := record()
	rec.RouteName = ""
	if got := string(f.append(nil, &entry{rec: rec})); got != "200 \n" {
		t.Errorf("got %q", got)
	}
	sf.Format = &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
		Specifier: &corev3.DataSource_Filename{Filename: "/etc/format"}}}
	if _, err := compileSubstitution(sf); err == nil || !strings.Contains(err.Error(), "text_format_source") {
		t.Errorf("filename source: %v", err)
	}
}

func BenchmarkIstioText(b *testing.B) {
	f, err := compileText(istioText)
	if err != nil {
		b.Fatal(err)
	}
	e := &entry{rec: record()}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.append(buf[:0], e)
	}
}
