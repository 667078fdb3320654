//go:build linux

package security

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellismesh/trellis/test/framework"
)

// backend is one real web server behind the sidecar: it serves the
// secret marker under /admin and a public page elsewhere, and keeps an
// access log the tests read to tell whether a request reached it.
type backend struct {
	name string
	port uint16
	// src is the client address the tests dial the sidecar from; the
	// sidecar's original destination for it is this backend's port.
	src string
	// log returns the request lines the backend has served so far.
	log func() []string
	// headerLog returns the lines of the backend's header log so far,
	// one per request: "case=<x-case>" then, tab-separated, name=value
	// for each of loggedHeaders ("-" when absent), as written by the
	// server itself (B1, B7, B9: what the proxy forwarded).
	headerLog func() []string
	// echo is the Go backend (nil for the others): its /sink and /stream
	// progress (C7).
	echo *echo
}

const installHint = "apt-get install nginx apache2"

// startNginx runs Debian's nginx in the foreground, one process
// (master_process off), with a generated configuration in a temporary
// directory: /admin (nginx's own prefix match, after its decoding, slash
// merging and dot-segment resolution) answers the marker.
func startNginx(t *testing.T, addr string, port uint16, marker string) *backend {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatalf("nginx not found (%v): %s", err, installHint)
		}
	}
	dir := t.TempDir()
	accessLog := filepath.Join(dir, "access.log")
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
  log_format line '$request $status case=$http_x_case';
  access_log %[2]s line;
  log_format headers '%[6]s';
  access_log %[1]s/headers.log headers;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  default_type text/plain;
  server {
    listen %[3]s:%[4]d;
    location /admin { return 200 "%[5]s nginx $uri\n"; }
    location / { return 200 "public nginx $uri\n"; }
  }
}
`, dir, accessLog, addr, port, marker, headerFormat(func(name string) string {
		return "$http_" + strings.ReplaceAll(name, "-", "_")
	}))
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confFile)
	startServer(t, "nginx", cmd, addr, port, filepath.Join(dir, "error.log"))
	return &backend{name: "nginx", port: port, log: fileLines(accessLog), headerLog: fileLines(filepath.Join(dir, "headers.log"))}
}

// startApache runs Debian's Apache httpd (apache2 -DFOREGROUND -f CONF)
// with a minimal generated configuration: the event MPM, files served
// from a document root where admin holds the marker and public a page.
func startApache(t *testing.T, addr string, port uint16, marker string) *backend {
	t.Helper()
	bin, err := exec.LookPath("apache2")
	if err != nil {
		bin = "/usr/sbin/apache2"
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatalf("apache2 not found (%v): %s", err, installHint)
		}
	}
	const modules = "/usr/lib/apache2/modules"
	if _, err := os.Stat(filepath.Join(modules, "mod_mpm_event.so")); err != nil {
		t.Fatalf("apache2 modules missing (%v): %s", err, installHint)
	}
	// Not t.TempDir: as root httpd's children run as nobody, who must be
	// able to reach the document root (t.TempDir's parent is private).
	dir, err := os.MkdirTemp("", "trellis-security-apache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	docs := filepath.Join(dir, "htdocs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"admin": marker + " apache\n", "public": "public apache\n"} {
		if err := os.WriteFile(filepath.Join(docs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	accessLog := filepath.Join(dir, "access.log")
	user := ""
	if os.Geteuid() == 0 {
		// As root httpd must be told whom its children run as; the
		// document root is world-readable.
		user = "User nobody\nGroup nogroup\n"
	}
	conf := fmt.Sprintf(`ServerRoot %[1]s
ServerName security.test
Listen %[2]s:%[3]d
PidFile %[1]s/httpd.pid
DefaultRuntimeDir %[1]s
Mutex file:%[1]s default
ErrorLog %[1]s/error.log
LogLevel warn
LoadModule mpm_event_module %[4]s/mod_mpm_event.so
LoadModule authz_core_module %[4]s/mod_authz_core.so
%[5]sLogFormat "%%r %%>s case=%%{X-Case}i" line
CustomLog %[6]s line
LogFormat "%[8]s" headers
CustomLog %[1]s/headers.log headers
DocumentRoot %[7]s
<Directory %[7]s>
  Require all granted
</Directory>
`, dir, addr, port, modules, user, accessLog, docs, headerFormat(func(name string) string {
		return "%{" + name + "}i"
	}))
	confFile := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-DFOREGROUND", "-d", dir, "-f", confFile)
	startServer(t, "apache2", cmd, addr, port, filepath.Join(dir, "error.log"))
	return &backend{name: "apache", port: port, log: fileLines(accessLog), headerLog: fileLines(filepath.Join(dir, "headers.log"))}
}

// startServer starts cmd as a child tied to the test and waits until it
// accepts connections on addr:port.
func startServer(t *testing.T, name string, cmd *exec.Cmd, addr string, port uint16, errorLog string) {
	t.Helper()
	p := framework.StartProcess(t, name, cmd, os.Getenv("TRELLIS_E2E_LOGS") != "")
	target := net.JoinHostPort(addr, fmt.Sprint(port))
	framework.Eventually(t, 15*time.Second, func() error {
		if err, exited := p.Exited(); exited {
			b, _ := os.ReadFile(errorLog)
			t.Fatalf("%s exited: %v\n%s\n%s", name, err, p.Tail(30), b)
		}
		c, err := net.DialTimeout("tcp", target, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// fileLines reads a log file's lines (none while it does not exist).
func fileLines(file string) func() []string {
	return func() []string {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// echo is the Go backend: it answers the marker for any request whose
// path, decoded, cleaned and with slashes merged (as lenient servers
// resolve it), is under /admin, and otherwise echoes the request it got
// as JSON (URI and headers), so tests can see what was forwarded.
type echo struct {
	mu   sync.Mutex
	seen []string
	// heads is the header log (backend.headerLog).
	heads []string
	// sunk and streamed are the body bytes /sink has read and /stream has
	// written so far (C7: back-pressure is visible in them).
	sunk, streamed atomic.Int64
}

// echoed is the Go backend's answer for a public request.
type echoed struct {
	URI    string
	Header http.Header
}

func startEcho(t *testing.T, addr string, port uint16, marker string) *backend {
	t.Helper()
	e := &echo{}
	l, err := net.Listen("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.handler(marker), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &backend{name: "go", port: port, log: e.lines, headerLog: e.headerLines, echo: e}
}

func (e *echo) handler(marker string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, r.Method+" "+r.RequestURI+" "+r.Proto+" case="+r.Header.Get("X-Case"))
		e.heads = append(e.heads, headerFormat(func(name string) string {
			if vs := r.Header.Values(name); len(vs) > 0 {
				return logEscape(strings.Join(vs, ", "))
			}
			return "-"
		}))
		e.mu.Unlock()
		switch r.URL.Path {
		case "/sink": // reads the body as it comes (C7)
			n, _ := io.Copy(countingWriter{&e.sunk}, r.Body)
			fmt.Fprintf(w, "sink %d\n", n)
			return
		case "/stream": // writes ?n= bytes (C7)
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			chunk := make([]byte, 32<<10)
			for n > 0 {
				k, err := w.Write(chunk[:min(n, int64(len(chunk)))])
				e.streamed.Add(int64(k))
				if err != nil {
					return
				}
				n -= int64(k)
			}
			return
		}
		p := path.Clean("/" + strings.ReplaceAll(r.URL.Path, `\`, "/"))
		if p == "/admin" || strings.HasPrefix(p, "/admin/") {
			fmt.Fprintf(w, "%s go %s\n", marker, p)
			return
		}
		_ = json.NewEncoder(w).Encode(echoed{URI: r.RequestURI, Header: r.Header})
	})
}

func (e *echo) lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

func (e *echo) headerLines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.heads...)
}

// countingWriter discards what it is given, counting it.
type countingWriter struct{ n *atomic.Int64 }

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// saw reports the log lines of b for the request tagged id.
func saw(b *backend, id string) []string {
	var out []string
	for _, l := range b.log() {
		if strings.HasSuffix(l, " case="+id) {
			out = append(out, l)
		}
	}
	return out
}

// loggedHeaders are the request headers every backend writes to its
// header log: the mesh-internal ones a client may try to assert (B1), the
// upgrade machinery (B7, B8) and the proxy's own (B9).
func loggedHeaders() []string {
	return []string{
		"x-forwarded-client-cert",
		"x-envoy-original-path", "x-envoy-decorator-operation", "x-envoy-peer-metadata",
		"x-envoy-peer-metadata-id", "x-envoy-internal", "x-envoy-expected-rq-timeout-ms",
		"x-envoy-upstream-rq-timeout-ms", "x-envoy-retry-on", "x-envoy-attempt-count",
		"x-trellis-identity", "x-trellis-peer",
		"x-forwarded-for", "x-forwarded-proto", "x-request-id",
		"connection", "upgrade", "http2-settings",
	}
}

// headerFormat renders a header log line: "case=" and the x-case header,
// then a tab and name=value for each of loggedHeaders, where value(name)
// is the server's own expression for that request header (an nginx
// variable, an Apache format directive, or the Go backend's value).
func headerFormat(value func(name string) string) string {
	var b strings.Builder
	b.WriteString("case=" + value("x-case"))
	for _, h := range loggedHeaders() {
		b.WriteString("\t" + h + "=" + value(h))
	}
	return b.String()
}

// logEscape makes a header value safe for a tab-separated log line, as
// nginx and Apache escape control characters in theirs.
func logEscape(v string) string {
	return strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(v)
}

// headersSeen returns the headers b logged for the request tagged id
// (ok false while it has not logged it), polling for up to a few seconds
// since a server writes its log line after the response.
func headersSeen(b *backend, id string) (h map[string]string, ok bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range b.headerLog() {
			fields := strings.Split(l, "\t")
			if fields[0] != "case="+id {
				continue
			}
			h = make(map[string]string, len(fields)-1)
			for _, f := range fields[1:] {
				if k, v, found := strings.Cut(f, "="); found {
					h[k] = v
				}
			}
			return h, true
		}
		if time.Now().After(deadline) {
			return nil, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
