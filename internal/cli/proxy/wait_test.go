package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
)

// runWait executes `trellis proxy wait ARGS`.
func runWait(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newCommand(deps{logger: slog.New(slog.NewTextHandler(io.Discard, nil)), getenv: func(string) string { return "" }})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(append([]string{"wait"}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestWaitReady: a readiness endpoint that turns ready after a few 503s;
// wait returns nil (exit 0) once it answers 200, having polled it.
func TestWaitReady(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz/ready" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) <= 3 {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "LIVE\n")
	}))
	defer srv.Close()
	out, err := runWait(t, "--url", srv.URL+"/healthz/ready", "--periodMillis", "20", "--requestTimeoutMillis", "500", "--timeoutSeconds", "10")
	if err != nil {
		t.Fatalf("wait: %v\n%s", err, out)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("%d probes, want 4", n)
	}
	if !strings.Contains(out, "ready after") {
		t.Errorf("output: %q", out)
	}
}

// TestWaitTimeout polls a real sidecar that has no control plane (its
// readiness endpoint answers 503 until configured): wait gives up after
// --timeout-seconds with the last answer in the error (exit 1).
func TestWaitTimeout(t *testing.T) {
	node, err := sidecar.NodeConfig{IP: "127.0.0.1", PodName: "p", Namespace: "default"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sidecar.New(sidecar.Config{XDSAddress: "127.0.0.1:1", Node: node, AdminAddress: "-", MetricsAddress: "-", HealthAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	defer func() { s.Stop(); <-done }()
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a, ok := s.Addr("health"); ok {
			url = fmt.Sprintf("http://%s/healthz/ready", a)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("health server not bound")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	_, err = runWait(t, "--url", url, "--timeout-seconds", "1", "--period-millis", "50")
	if err == nil {
		t.Fatal("wait succeeded against an unconfigured sidecar")
	}
	if el := time.Since(start); el < time.Second || el > 5*time.Second {
		t.Errorf("gave up after %v, want about 1s", el)
	}
	for _, want := range []string{"timeout waiting for the proxy", "HTTP 503", "waiting for configuration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestWaitFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--url", "ftp://x/"},
		{"--timeoutSeconds", "0"},
		{"--periodMillis", "-1"},
		{"--request-timeout-millis", "0"},
	} {
		if _, err := runWait(t, args...); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}
