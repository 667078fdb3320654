package up

import (
	"reflect"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	d := RunData{Name: "reviews-v2", Namespace: "default", Address: "127.0.0.13", Proxy: "127.0.0.13:15080", Labels: map[string]string{"version": "v2"},
		appPorts: map[uint32]uint16{9080: 41001}}
	cases := []struct {
		name, tmpl string
		want       []string
		err        string
	}{
		{"bookinfo", "trellis bookinfo reviews --version {{.Labels.version}} --listen {{.Address}}:9080 --outbound {{.Proxy}}",
			[]string{"trellis", "bookinfo", "reviews", "--version", "v2", "--listen", "127.0.0.13:9080", "--outbound", "127.0.0.13:15080"}, ""},
		{"app address", "app --listen {{.AppAddress}}", []string{"app", "--listen", "127.0.0.1:41001"}, ""},
		{"app by port", "app --listen {{.App 9080}}", []string{"app", "--listen", "127.0.0.1:41001"}, ""},
		{"app: not a port", "app --listen {{.App 9443}}", nil, "not a port of the workload"},
		{"extra spaces", "  app   {{.Name}}.{{.Namespace}} ", []string{"app", "reviews-v2.default"}, ""},
		{"missing label", "app {{.Labels.zone}}", nil, "zone"},
		{"unknown field", "app {{.Port}}", nil, "Port"},
		{"parse error", "app {{.Name", nil, "unclosed action"},
		{"empty", "{{if false}}x{{end}}", nil, "empty command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := render(tc.tmpl, d)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("render(%q) error %v, want one containing %q", tc.tmpl, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("render(%q) = %q, want %q", tc.tmpl, got, tc.want)
			}
		})
	}
}

// TestRenderSeveralPorts: a workload with several ports names the one
// its application serves.
func TestRenderSeveralPorts(t *testing.T) {
	d := RunData{Name: "web", appPorts: map[uint32]uint16{9080: 41001, 9443: 41002}}
	if _, err := render("app {{.AppAddress}}", d); err == nil || !strings.Contains(err.Error(), "{{.App PORT}}") {
		t.Errorf("AppAddress with two ports: %v, want an error naming {{.App PORT}}", err)
	}
	got, err := render("app --http {{.App 9080}} --https {{.App 9443}}", d)
	if err != nil || !reflect.DeepEqual(got, []string{"app", "--http", "127.0.0.1:41001", "--https", "127.0.0.1:41002"}) {
		t.Errorf("render = %q, %v", got, err)
	}
}

// TestPlanBookinfo reads the example as up does.
func TestPlanBookinfo(t *testing.T) {
	dir, prefix := bookinfoDir(t)
	next := uint16(41000)
	ws, _, err := plan(t.Context(), dir, 15080, func() (uint16, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range ws {
		names = append(names, w.ID())
		if w.Command == nil || !reflect.DeepEqual(w.Ports, []uint32{9080}) {
			t.Errorf("%s: command %q ports %v, want a command and port 9080", w.ID(), w.Command, w.Ports)
		}
	}
	want := []string{"details-v1.default", "productpage-v1.default", "ratings-v1.default", "reviews-v1.default", "reviews-v2.default", "reviews-v3.default"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("workloads %q, want %q", names, want)
	}
	pp := ws[1]
	if pp.IngressPort != 9080 || pp.IngressPath != "/productpage" {
		t.Errorf("productpage ingress %d %q, want 9080 /productpage", pp.IngressPort, pp.IngressPath)
	}
	// productpage is the second workload: its port is the second allocated.
	wantCmd := "trellis bookinfo productpage --listen 127.0.0.1:41002 --outbound " + prefix + "10:15080"
	if got := strings.Join(pp.Command, " "); got != wantCmd {
		t.Errorf("productpage command %q, want %q", got, wantCmd)
	}
	if pp.ServiceAccount != "bookinfo-productpage" || pp.Labels["app"] != "productpage" {
		t.Errorf("productpage identity: %q %v", pp.ServiceAccount, pp.Labels)
	}
}
