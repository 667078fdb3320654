package model

import "testing"

func TestNewVisibility(t *testing.T) {
	// The object lives in namespace "app"; each case lists who sees it.
	namespaces := []string{"app", "other", "third"}
	for _, tc := range []struct {
		name     string
		exportTo []string
		defaults []string
		visible  []string
	}{
		{"no exportTo, no defaults: everyone", nil, nil, namespaces},
		{"no exportTo, default *", nil, []string{"*"}, namespaces},
		{"no exportTo, default .", nil, []string{"."}, []string{"app"}},
		{"no exportTo, default ~", nil, []string{"~"}, nil},
		{"dot", []string{"."}, []string{"*"}, []string{"app"}},
		{"star", []string{"*"}, []string{"."}, namespaces},
		{"tilde: nobody, not even its own namespace", []string{"~"}, []string{"*"}, nil},
		{"named namespace only", []string{"other"}, nil, []string{"other"}},
		{"own namespace by name", []string{"app"}, nil, []string{"app"}},
		{"dot and named", []string{".", "third"}, nil, []string{"app", "third"}},
		{"star with others", []string{"other", "*"}, nil, namespaces},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVisibility(tc.exportTo, "app", tc.defaults)
			want := map[string]bool{}
			for _, ns := range tc.visible {
				want[ns] = true
			}
			for _, ns := range namespaces {
				if got := v.VisibleTo(ns); got != want[ns] {
					t.Errorf("VisibleTo(%q) = %v, want %v", ns, got, want[ns])
				}
			}
		})
	}
}
