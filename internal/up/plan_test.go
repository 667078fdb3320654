package up

import (
	"reflect"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	d := RunData{Name: "reviews-v2", Namespace: "default", Address: "127.0.0.13", Proxy: "127.0.0.13:15080", Labels: map[string]string{"version": "v2"}}
	cases := []struct {
		name, tmpl string
		want       []string
		err        string
	}{
		{"bookinfo", "trellis bookinfo reviews --version {{.Labels.version}} --listen {{.Address}}:9080 --outbound {{.Proxy}}",
			[]string{"trellis", "bookinfo", "reviews", "--version", "v2", "--listen", "127.0.0.13:9080", "--outbound", "127.0.0.13:15080"}, ""},
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

// TestPlanBookinfo reads the example as up does.
func TestPlanBookinfo(t *testing.T) {
	dir, prefix := bookinfoDir(t)
	ws, err := plan(t.Context(), dir, 15080)
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
	wantCmd := "trellis bookinfo productpage --listen " + prefix + "10:9080 --outbound " + prefix + "10:15080"
	if got := strings.Join(pp.Command, " "); got != wantCmd {
		t.Errorf("productpage command %q, want %q", got, wantCmd)
	}
	if pp.ServiceAccount != "bookinfo-productpage" || pp.Labels["app"] != "productpage" {
		t.Errorf("productpage identity: %q %v", pp.ServiceAccount, pp.Labels)
	}
}
