package bookinfo

import (
	"context"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	cases := []struct {
		name string
		args []string
		err  string
		out  string
	}{
		{"no role", []string{}, "a role is required", "usage: bookinfo"},
		{"help", []string{"--help"}, "", "usage: bookinfo"},
		{"role help", []string{"reviews", "-h"}, "", "-ratings-url"},
		{"unknown role", []string{"web"}, `unknown role "web"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := NewCommand(func(string) string { return "" })
			cmd.SetArgs(tc.args)
			var out strings.Builder
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			err := cmd.ExecuteContext(context.Background())
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Errorf("output lacks %q:\n%s", tc.out, out.String())
			}
		})
	}
}
