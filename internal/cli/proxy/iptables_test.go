package proxy

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellismesh/trellis/internal/dataplane/capture"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// recorder is a capture.Runner that never execs: *-save prints nothing (a
// clean namespace) and every call is recorded.
type recorder struct{ calls []string }

func (r *recorder) Run(_ context.Context, stdin, name string, args ...string) (string, error) {
	r.calls = append(r.calls, strings.TrimSpace(name+" "+strings.Join(args, " ")+"\n"+stdin))
	return "", nil
}

// run executes `trellis proxy iptables ARGS` with the given environment.
func run(t *testing.T, environ map[string]string, args ...string) (string, *recorder, error) {
	t.Helper()
	rec := &recorder{}
	cmd := newCommand(deps{
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		getenv: func(k string) string { return environ[k] },
		runner: rec,
	})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(append([]string{"iptables"}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), rec, err
}

func rulesFor(t *testing.T, mutate func(c *capture.Config)) string {
	t.Helper()
	cfg := capture.DefaultConfig()
	mutate(&cfg)
	rs, err := capture.Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rs.String()
}

// TestFlags checks that flags and environment variables produce the same
// rules as the equivalent capture.Config.
func TestFlags(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want func(c *capture.Config)
	}{
		{"defaults", nil, nil, func(c *capture.Config) {}},
		{"istio injector style", nil,
			[]string{"-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"},
			func(c *capture.Config) { c.InboundPortsExclude = []uint16{15090, 15021, 15020} }},
		{"long flags", nil,
			[]string{"--envoy-port=16001", "--inbound-capture-port=16006", "--proxy-uid=1000", "--proxy-gid=2000",
				"--istio-inbound-ports=80,8080", "--istio-service-cidr=10.96.0.0/12,fd00::/8",
				"--istio-service-exclude-cidr=10.96.0.1/32", "--istio-local-outbound-ports-exclude=22,3306",
				"--istio-outbound-ports=9000", "--dual-stack"},
			func(c *capture.Config) {
				c.ProxyPort, c.InboundCapturePort = 16001, 16006
				c.ProxyUIDs, c.ProxyGIDs = []uint32{1000}, []uint32{2000}
				c.InboundPorts = capture.Ports{List: []uint16{80, 8080}}
				c.OutboundCIDRs = capture.CIDRs{List: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00::/8")}}
				c.OutboundCIDRsExclude = []netip.Prefix{netip.MustParsePrefix("10.96.0.1/32")}
				c.OutboundPortsExclude = []uint16{22, 3306}
				c.OutboundPorts = []uint16{9000}
				c.IPv6 = true
			}},
		{"gid defaults to uid", nil, []string{"-u", "1000"}, func(c *capture.Config) {
			c.ProxyUIDs, c.ProxyGIDs = []uint32{1000}, []uint32{1000}
		}},
		{"empty lists disable capture", nil, []string{"-b", "", "-i", ""}, func(c *capture.Config) {
			c.InboundPorts, c.OutboundCIDRs = capture.Ports{}, capture.CIDRs{}
		}},
		{"environment", map[string]string{
			"ENVOY_PORT": "16001", "ISTIO_INBOUND_PORTS": "9080", "ISTIO_LOCAL_EXCLUDE_PORTS": "",
			"ISTIO_SERVICE_EXCLUDE_CIDR": "169.254.169.254/32", "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE": "25",
			"PROXY_UID": "1001", "PROXY_GID": "1002", "ISTIO_AGENT_DUAL_STACK": "true",
		}, nil, func(c *capture.Config) {
			c.ProxyPort = 16001
			c.InboundPorts = capture.Ports{List: []uint16{9080}}
			c.OutboundCIDRsExclude = []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}
			c.OutboundPortsExclude = []uint16{25}
			c.ProxyUIDs, c.ProxyGIDs = []uint32{1001}, []uint32{1002}
			c.IPv6 = true
		}},
		{"flag wins over environment", map[string]string{"ENVOY_PORT": "16001", "ISTIO_SERVICE_CIDR": "10.0.0.0/8"},
			[]string{"-p", "17001", "-i", "*"}, func(c *capture.Config) { c.ProxyPort = 17001 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, rec, err := run(t, tc.env, append(tc.args, "--dry-run")...)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if len(rec.calls) != 0 {
				t.Errorf("--dry-run ran tools: %q", rec.calls)
			}
			if diff := cmp.Diff(rulesFor(t, tc.want), out); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDryRunGolden pins the exact text --dry-run prints for Istio's usual
// injected invocation.
func TestDryRunGolden(t *testing.T) {
	out, _, err := run(t, nil, "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
		"-b", "*", "-d", "15090,15021,15020", "-o", "22", "--dual-stack", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "dry-run.golden")
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), out); diff != "" {
		t.Errorf("%s (-want +got); run with -update if intended:\n%s", path, diff)
	}
}

func TestFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want []string // substrings of the error
	}{
		{"bad port", nil, []string{"-p", "http"}, []string{`--envoy-port "http"`, "port"}},
		{"port out of range", nil, []string{"-z", "70000"}, []string{`--inbound-capture-port "70000"`}},
		{"same capture ports", nil, []string{"-z", "15001"}, []string{`--inbound-capture-port "15001"`, "must differ"}},
		{"bad uid", nil, []string{"-u", "istio-proxy"}, []string{`--proxy-uid "istio-proxy"`}},
		{"no owner", nil, []string{"-u", ""}, []string{"--proxy-uid", "at least one"}},
		{"bad mode", nil, []string{"-m", "NAT"}, []string{`--istio-inbound-interception-mode "NAT"`}},
		{"tproxy with an inbound list", nil, []string{"-m", "TPROXY", "-b", "9080"}, []string{`--istio-inbound-ports`, "TPROXY mode captures every inbound port"}},
		{"bad tproxy mark", nil, []string{"-m", "TPROXY", "--istio-inbound-tproxy-mark", "x"}, []string{`--istio-inbound-tproxy-mark "x"`, "32-bit"}},
		{"reserved tproxy table env", map[string]string{"INBOUND_TPROXY_ROUTE_TABLE": "254"}, []string{"-m", "TPROXY"},
			[]string{`--istio-inbound-tproxy-route-table "254" (from $INBOUND_TPROXY_ROUTE_TABLE)`, "reserved"}},
		{"bad inbound ports", nil, []string{"-b", "80,x"}, []string{`--istio-inbound-ports "80,x"`, `"x"`}},
		{"proxy port included", nil, []string{"-b", "80,15021"}, []string{`--istio-inbound-ports "15021"`, "never captured"}},
		{"bad exclude ports", nil, []string{"-d", "0"}, []string{`--istio-local-exclude-ports "0"`}},
		{"bad cidr", nil, []string{"-i", "10.0.0.0/33"}, []string{`--istio-service-cidr "10.0.0.0/33"`, "CIDR"}},
		{"wildcard exclude cidr", nil, []string{"-x", "*"}, []string{`--istio-service-exclude-cidr "*"`}},
		{"bad outbound exclude port", nil, []string{"-o", "22,ssh"}, []string{`--istio-local-outbound-ports-exclude "22,ssh"`}},
		{"bad dual stack", nil, []string{"--dual-stack=maybe"}, []string{`"maybe"`, `"--dual-stack"`}},
		{"bad dual stack env", map[string]string{"ISTIO_AGENT_DUAL_STACK": "maybe"}, nil, []string{`--dual-stack "maybe" (from $ISTIO_AGENT_DUAL_STACK)`}},
		{"env value named", map[string]string{"ISTIO_SERVICE_EXCLUDE_CIDR": "bogus"}, nil,
			[]string{`--istio-service-exclude-cidr "bogus" (from $ISTIO_SERVICE_EXCLUDE_CIDR)`}},
		{"bad backend", nil, []string{"--iptables-backend", "ebpf"}, []string{`--iptables-backend "ebpf"`}},
		{"dry run and clean", nil, []string{"--dry-run", "--clean"}, []string{"--dry-run and --clean"}},
		{"several at once", nil, []string{"-p", "x", "-o", "y"}, []string{"--envoy-port", "--istio-local-outbound-ports-exclude"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, err := run(t, tc.env, append(tc.args, "--dry-run")...)
			if tc.name == "dry run and clean" {
				_, rec, err = run(t, tc.env, tc.args...)
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(rec.calls) != 0 {
				t.Errorf("a failed command ran tools: %q", rec.calls)
			}
		})
	}
}

// TestApplyAndClean checks which tools run, through a recording Runner.
func TestApplyAndClean(t *testing.T) {
	_, rec, err := run(t, nil, "--iptables-backend", "nft")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 2 || rec.calls[0] != "iptables-nft-save" ||
		!strings.HasPrefix(rec.calls[1], "iptables-nft-restore --noflush --wait 5\n*nat\n") {
		t.Errorf("apply ran %q, want iptables-nft-save then iptables-nft-restore --noflush", rec.calls)
	}
	_, rec, err = run(t, nil, "--clean", "--dual-stack")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"iptables-save", "ip6tables-save"}, rec.calls); diff != "" {
		t.Errorf("--clean on a clean namespace (-want +got):\n%s", diff)
	}

	// TPROXY: the routing first, then the mangle table.
	_, rec, err = run(t, nil, "-m", "TPROXY", "--istio-inbound-tproxy-mark", "0x100", "--istio-inbound-tproxy-route-table", "200")
	if err != nil {
		t.Fatal(err)
	}
	wantPrefix := []string{
		"ip -4 route replace local 0.0.0.0/0 dev lo table 200",
		"ip -4 rule list fwmark 256 lookup 200",
		"ip -4 rule add fwmark 256 lookup 200",
		"iptables-save",
	}
	if len(rec.calls) != 5 || cmp.Diff(wantPrefix, rec.calls[:4]) != "" ||
		!strings.HasPrefix(rec.calls[4], "iptables-restore --noflush --wait 5\n*mangle\n") {
		t.Errorf("TPROXY apply ran %q, want %q then iptables-restore of the mangle table", rec.calls, wantPrefix)
	}
	_, rec, err = run(t, nil, "--clean", "-m", "TPROXY")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"iptables-save", "ip -4 rule list fwmark 1337 lookup 133", "ip -4 route del local 0.0.0.0/0 dev lo table 133"}
	if diff := cmp.Diff(want, rec.calls); diff != "" {
		t.Errorf("--clean -m TPROXY (-want +got):\n%s", diff)
	}
}

func TestCommandGroup(t *testing.T) {
	cmd := NewCommand(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if cmd.Name() != "proxy" {
		t.Errorf("name %q", cmd.Name())
	}
	sub, _, err := cmd.Find([]string{"iptables"})
	if err != nil || sub.Name() != "iptables" {
		t.Fatalf("iptables subcommand: %v", err)
	}
	// Istio's short flags exist with Istio's meanings.
	for short, long := range map[string]string{"p": "envoy-port", "z": "inbound-capture-port", "u": "proxy-uid", "g": "proxy-gid",
		"m": "istio-inbound-interception-mode", "b": "istio-inbound-ports", "d": "istio-local-exclude-ports",
		"i": "istio-service-cidr", "x": "istio-service-exclude-cidr", "o": "istio-local-outbound-ports-exclude"} {
		if f := sub.Flags().ShorthandLookup(short); f == nil || f.Name != long {
			t.Errorf("-%s is not --%s", short, long)
		}
	}
}
