package dashboard

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dashboard/" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("<html>graph</html>"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	want := "Dashboard: http://" + addr + "/dashboard/\n"
	for _, tc := range []struct {
		name     string
		browser  bool
		lookPath func(string) (string, error)
		openErr  error
		want     string
		opened   bool
	}{
		{"opens with xdg-open", true, func(string) (string, error) { return "/usr/bin/xdg-open", nil }, nil, want + "Opened in your browser.\n", true},
		{"no xdg-open: prints", true, func(string) (string, error) { return "", errors.New("not found") }, nil, want + "(xdg-open not found: open the URL in a browser on this host)\n", false},
		{"open fails: prints", true, func(string) (string, error) { return "/usr/bin/xdg-open", nil }, errors.New("no display"), want + "(could not open a browser with /usr/bin/xdg-open: no display; open the URL yourself)\n", true},
		{"--browser=false", false, func(string) (string, error) { t.Error("looked for xdg-open"); return "", nil }, nil, want, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opened string
			d := Deps{LookPath: tc.lookPath, Open: func(program, url string) error { opened = program + " " + url; return tc.openErr }}
			cmd := NewCommand(d)
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetArgs([]string{"--address", addr, "--browser=" + map[bool]string{true: "true", false: "false"}[tc.browser]})
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tc.want)
			}
			if tc.opened != (opened == "/usr/bin/xdg-open http://"+addr+"/dashboard/") {
				t.Errorf("opened %q; want opened=%v", opened, tc.opened)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the dashboard only serves local callers", http.StatusForbidden)
	}))
	defer forbidden.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()
	for _, tc := range []struct{ name, addr, want string }{
		{"nothing listening", closedAddr, "does not answer"},
		{"refused", strings.TrimPrefix(forbidden.URL, "http://"), "403 Forbidden: the dashboard only serves local callers"},
		{"empty address", "", "--address: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), &bytes.Buffer{}, Deps{Client: http.DefaultClient}, Options{Address: tc.addr})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
