package route

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// parseRC decodes a RouteConfiguration written in proto JSON.
func parseRC(t testing.TB, js string) *routev3.RouteConfiguration {
	t.Helper()
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal([]byte(js), rc); err != nil {
		t.Fatalf("decoding route configuration: %v\n%s", err, js)
	}
	return rc
}

// compileJSON decodes and compiles, failing the test on error.
func compileJSON(t testing.TB, js string) *Table {
	t.Helper()
	tbl, err := Compile(parseRC(t, js))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

// compileErr decodes and compiles, expecting an *Error that mentions every
// want fragment.
func compileErr(t *testing.T, js string, want ...string) *Error {
	t.Helper()
	_, err := Compile(parseRC(t, js))
	if err == nil {
		t.Fatalf("Compile succeeded; want error mentioning %q", want)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is %T, want *Error", err, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	return ce
}

// oneVhost wraps routes (a JSON array body) in a single "*" virtual host.
func oneVhost(routes string) string {
	return `{"name":"rc","virtual_hosts":[{"name":"vh","domains":["*"],"routes":[` + routes + `]}]}`
}

// req builds a request; headers alternate name, value.
func req(method, authority, path string, headers ...string) *Request {
	h := HeaderMap{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Add(headers[i], headers[i+1])
	}
	return &Request{Method: method, Scheme: "http", Authority: authority, Path: path, Headers: h}
}

func routeName(r *Route) string {
	if r == nil {
		return "<none>"
	}
	return r.Name
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// parseBytes decodes a wire-format RouteConfiguration, or nil.
func parseBytes(data []byte) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{}
	if err := proto.Unmarshal(data, rc); err != nil {
		return nil
	}
	return rc
}
