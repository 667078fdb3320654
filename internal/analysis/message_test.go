package analysis

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

func TestMessageString(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{
			name: "full",
			m: Message{Code: "IST0101", Level: Error, Field: "spec.http[0].route[0].destination.host", Text: `Referenced host not found: "reviewz"`,
				Origin: Origin{Kind: "VirtualService", Namespace: "default", Name: "reviews", File: "bookinfo.yaml", Document: 3}},
			want: `Error [IST0101] (VirtualService default/reviews bookinfo.yaml:3) spec.http[0].route[0].destination.host: Referenced host not found: "reviewz"`,
		},
		{
			name: "file only, no field",
			m:    Message{Code: "TRL0002", Level: Error, Text: "x", Origin: Origin{File: "dir"}},
			want: `Error [TRL0002] (dir) x`,
		},
		{
			name: "no origin",
			m:    Message{Code: "IST0133", Level: Warning, Text: "y"},
			want: `Warning [IST0133] y`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLevels(t *testing.T) {
	for _, l := range []Level{Info, Warning, Error} {
		b, _ := json.Marshal(l)
		var back Level
		if err := json.Unmarshal(b, &back); err != nil || back != l {
			t.Errorf("%v: round trip gave %v, %v", l, back, err)
		}
	}
	if _, err := ParseLevel("fatal"); err == nil {
		t.Error("ParseLevel(fatal) succeeded")
	}
	ms := []Message{{Level: Info}, {Level: Warning}, {Level: Error}}
	if got := len(Filter(ms, Warning)); got != 2 {
		t.Errorf("Filter(Warning) kept %d", got)
	}
	if got := Count(ms); got[Error] != 1 || got[Info] != 1 {
		t.Errorf("Count = %v", got)
	}
}

func TestTypesUnique(t *testing.T) {
	seen := map[Code]bool{}
	for _, ty := range Types() {
		if seen[ty.Code] {
			t.Errorf("duplicate code %s", ty.Code)
		}
		seen[ty.Code] = true
	}
}

func vs(ns, name string, exportTo []string, gateways []string, hosts ...string) config.Config {
	return config.Config{
		Meta: config.Meta{Kind: schema.VirtualService, Namespace: ns, Name: name},
		Spec: &networking.VirtualService{Hosts: hosts, ExportTo: exportTo, Gateways: gateways},
	}
}

// TestMeshConflictsExportTo checks IST0109 against exportTo without any
// file: Analyze is a pure function of its input.
func TestMeshConflictsExportTo(t *testing.T) {
	tests := []struct {
		name string
		a, b config.Config
		want int // IST0109 messages
	}{
		{"both public", vs("a", "x", nil, nil, "h.example.com"), vs("b", "y", nil, nil, "h.example.com"), 2},
		{"both private", vs("a", "x", []string{"."}, nil, "h.example.com"), vs("b", "y", []string{"."}, nil, "h.example.com"), 0},
		{"private meets public", vs("a", "x", []string{"."}, nil, "h.example.com"), vs("b", "y", []string{"*"}, nil, "h.example.com"), 2},
		{"private meets exported to it", vs("a", "x", []string{"."}, nil, "h.example.com"), vs("b", "y", []string{"a"}, nil, "h.example.com"), 2},
		{"hidden", vs("a", "x", []string{"~"}, nil, "h.example.com"), vs("b", "y", nil, nil, "h.example.com"), 0},
		{"short names in different namespaces differ", vs("a", "x", nil, nil, "h"), vs("b", "y", nil, nil, "h"), 0},
		{"gateway-bound is not mesh", vs("a", "x", nil, []string{"gw"}, "h.example.com"), vs("b", "y", nil, nil, "h.example.com"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := model.NewSnapshot(model.SnapshotInput{Configs: []config.Config{tc.a, tc.b}})
			n := 0
			for _, m := range Analyze(Input{Snapshot: snap}) {
				if m.Code == ConflictingMeshGatewayVirtualServiceHosts.Code {
					n++
				}
			}
			if n != tc.want {
				t.Errorf("%d IST0109 messages, want %d", n, tc.want)
			}
		})
	}
}

func TestAnalyzeEmpty(t *testing.T) {
	if got := Analyze(Input{}); len(got) != 0 {
		t.Errorf("Analyze(empty) = %v", got)
	}
}

func TestGatewayKey(t *testing.T) {
	for ref, want := range map[string]config.Key{
		"gw":                         {Kind: schema.Gateway, Namespace: "ns", Name: "gw"},
		"istio-system/gw":            {Kind: schema.Gateway, Namespace: "istio-system", Name: "gw"},
		"gw.other.svc.cluster.local": {Kind: schema.Gateway, Namespace: "other", Name: "gw"},
	} {
		if got := gatewayKey(ref, "ns"); !cmp.Equal(got, want) {
			t.Errorf("gatewayKey(%q) = %v, want %v", ref, got, want)
		}
	}
}
