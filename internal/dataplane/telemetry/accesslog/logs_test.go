package accesslog

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func fileLog(path, format string) *filev3.FileAccessLog {
	return &filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: format}}},
	}}}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestFileThroughFactory: two loggers on one path share a buffer; lines
// reach the file on Flush and Run's ticks, whole and in order.
func TestFileThroughFactory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	logs := New(Config{FlushInterval: 10 * time.Millisecond})
	fac := logs.Factory()
	f1, err := fac.Build("envoy.access_loggers.file", anyOf(t, fileLog(path, "a %RESPONSE_CODE% %REQ(:PATH)%\n")))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := fac.Build("envoy.access_loggers.file", anyOf(t, fileLog(path, "b %RESPONSE_CODE%\n")))
	if err != nil {
		t.Fatal(err)
	}
	o1, o2 := f1.(interface{ Observe(*filter.Record) }), f2.(interface{ Observe(*filter.Record) })
	o1.Observe(&filter.Record{ResponseCode: 200, Path: "/one"})
	o2.Observe(&filter.Record{ResponseCode: 404})
	if got := readFile(t, path); got != "" {
		t.Fatalf("written before a flush: %q", got)
	}
	logs.Flush()
	if got, want := readFile(t, path), "a 200 /one\nb 404\n"; got != want {
		t.Fatalf("file = %q, want %q", got, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- logs.Run(ctx) }()
	o1.Observe(&filter.Record{ResponseCode: 503, Path: "/two"})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(readFile(t, path), "a 503 /two\n") {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not flush: %q", readFile(t, path))
		}
		time.Sleep(5 * time.Millisecond)
	}
	o1.Observe(&filter.Record{ResponseCode: 204, Path: "/last"})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !strings.HasSuffix(got, "a 204 /last\n") {
		t.Errorf("not flushed on stop: %q", got)
	}
	if logs.Dropped() != 0 || logs.WriteErrors() != 0 {
		t.Errorf("dropped %d, write errors %d", logs.Dropped(), logs.WriteErrors())
	}
}

// TestDropsWhenFull: a full buffer drops lines (counted) rather than
// blocking the request; whole lines only.
func TestDropsWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	logs := New(Config{BufferLimit: 100})
	lg, err := logs.Compile(anyOf(t, fileLog(path, "%REQ(:PATH)%\n")))
	if err != nil {
		t.Fatal(err)
	}
	line := "/" + strings.Repeat("x", 38) // 40 bytes with the newline
	for range 5 {
		lg.Observe(&filter.Record{Path: line})
	}
	if got := logs.Dropped(); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	if err := logs.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != line+"\n"+line+"\n" {
		t.Errorf("file = %q", got)
	}
}

func TestWriteErrorCounted(t *testing.T) {
	logs := New(Config{})
	lg, err := logs.Compile(anyOf(t, fileLog(filepath.Join(t.TempDir(), "missing", "dir", "a.log"), "x\n")))
	if err != nil {
		t.Fatal(err)
	}
	lg.Observe(&filter.Record{})
	logs.Flush()
	if logs.WriteErrors() != 1 {
		t.Errorf("write errors %d, want 1", logs.WriteErrors())
	}
	logs.Close()
}

func TestCompileRejects(t *testing.T) {
	logs := New(Config{})
	defer logs.Close()
	for _, tc := range []struct {
		name string
		cfg  proto.Message
		want string
	}{
		{"unknown operator", fileLog("/tmp/x", "%NOPE%\n"), "log_format: text_format_source: %NOPE%: unknown command operator"},
		{"no path", &filev3.FileAccessLog{}, "Path"},
		{"deprecated format", &filev3.FileAccessLog{Path: "/tmp/x", AccessLogFormat: &filev3.FileAccessLog_Format{Format: "%BAD"}}, "format: "},
		{"not a logger", &corev3.Node{}, "unsupported access logger type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := logs.Compile(anyOf(t, tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestStdoutDefaultFormat: the stdout logger without a format writes
// Envoy's default format to the stream Open returns for /dev/stdout.
func TestStdoutDefaultFormat(t *testing.T) {
	var out strings.Builder
	var opened []string
	logs := New(Config{Open: func(path string) (io.WriteCloser, error) {
		opened = append(opened, path)
		return nopCloser{&out}, nil
	}})
	lg, err := logs.Compile(anyOf(t, &streamv3.StdoutAccessLog{}))
	if err != nil {
		t.Fatal(err)
	}
	rec := record()
	lg.Observe(rec)
	if err := logs.Close(); err != nil {
		t.Fatal(err)
	}
	want := `[2024-05-06T07:57:31.186Z] "GET /reviews/0?x=1 HTTP/1.1" 200 - 0 135 4 3 "-" "curl/8.0" "5f4e1c2a" "reviews:9080" "10.0.0.7:9080"` + "\n"
	if out.String() != want || len(opened) != 1 || opened[0] != "/dev/stdout" {
		t.Errorf("opened %q, wrote %q, want %q", opened, out.String(), want)
	}
}

// TestTCPEntries: CompileTCP builds the tcp proxy's session logger; an
// access log filter is rejected, naming the entry.
func TestTCPEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcp.log")
	logs := New(Config{})
	defer logs.Close()
	fn, err := logs.CompileTCP([]*accesslogv3.AccessLog{{
		Name:       "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, fileLog(path, "%UPSTREAM_CLUSTER% %BYTES_RECEIVED% %RESPONSE_FLAGS%\n"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	fn(&tcp.Session{Cluster: "BlackHoleCluster", Start: time.Now()})
	logs.Flush()
	if got := readFile(t, path); got != "BlackHoleCluster 0 -\n" {
		t.Errorf("file = %q", got)
	}
	if fn, err := logs.CompileTCP(nil); fn != nil || err != nil {
		t.Errorf("no entries: got a logger (%t), error %v", fn != nil, err)
	}
	_, err = logs.CompileTCP([]*accesslogv3.AccessLog{{
		Name:       "filtered",
		Filter:     &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{NotHealthCheckFilter: &accesslogv3.NotHealthCheckFilter{}}},
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anyOf(t, &streamv3.StdoutAccessLog{})},
	}})
	if err == nil || !strings.Contains(err.Error(), "access_log[0] (filtered): filter") {
		t.Errorf("filter: %v", err)
	}
}
