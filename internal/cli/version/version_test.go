package version

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		check     func(t *testing.T, s string)
	}{
		{"text", "text", func(t *testing.T, s string) {
			if !strings.HasPrefix(s, "trellis 1.2.3 (go") {
				t.Errorf("text output = %q", s)
			}
		}},
		{"json", "json", func(t *testing.T, s string) {
			var info Info
			if err := json.Unmarshal([]byte(s), &info); err != nil || info.Version != "1.2.3" || info.GoVersion == "" {
				t.Errorf("json output = %q (%v)", s, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := NewCommand("1.2.3")
			var buf bytes.Buffer
			cmd.SetOut(&buf)
			cmd.SetArgs([]string{"-o", tc.out})
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			tc.check(t, buf.String())
		})
	}
	cmd := NewCommand("1.2.3")
	cmd.SetArgs([]string{"-o", "xml"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("unknown format: err = %v", err)
	}
}
