package capture

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func prefixes(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestRulesGolden(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(c *Config)
	}{
		{"default", func(c *Config) {}},
		{"inbound-ports-include", func(c *Config) {
			c.InboundPorts = Ports{List: []uint16{9080, 80, 9080}}
		}},
		{"inbound-wildcard-exclude", func(c *Config) {
			c.InboundPortsExclude = []uint16{22, 15020, 8443}
		}},
		{"no-inbound", func(c *Config) { c.InboundPorts = Ports{} }},
		{"outbound-cidrs", func(c *Config) {
			c.OutboundCIDRs = CIDRs{List: prefixes(t, "10.96.0.0/12", "192.168.0.0/16", "fd00::/8")}
			c.OutboundCIDRsExclude = prefixes(t, "10.96.0.10/32", "fd00::53/128")
		}},
		{"outbound-ports", func(c *Config) {
			c.OutboundPortsExclude = []uint16{22, 3306}
			c.OutboundPorts = []uint16{8080}
			c.OutboundCIDRs = CIDRs{}
		}},
		{"outbound-loopback-included", func(c *Config) {
			c.OutboundCIDRs = CIDRs{List: prefixes(t, "127.0.0.1/32", "10.0.0.0/8")}
		}},
		{"owners", func(c *Config) {
			c.ProxyUIDs = []uint32{1337, 3}
			c.ProxyGIDs = []uint32{4}
		}},
		{"gid-only", func(c *Config) { c.ProxyUIDs = nil }},
		{"custom-ports", func(c *Config) {
			c.ProxyPort, c.InboundCapturePort, c.InboundTunnelPort = 16001, 16006, 16008
		}},
		{"ipv6", func(c *Config) {
			c.IPv6 = true
			c.OutboundCIDRsExclude = prefixes(t, "169.254.169.254/32", "fe80::/10")
			c.InboundPortsExclude = []uint16{22}
		}},
		{"ipv6-v4-only-include", func(c *Config) {
			c.IPv6 = true
			c.OutboundCIDRs = CIDRs{List: prefixes(t, "10.0.0.0/8")}
		}},
		{"tproxy", func(c *Config) {
			c.InboundInterceptionMode = TProxy
			c.InboundPortsExclude = []uint16{22}
			c.OutboundCIDRsExclude = prefixes(t, "169.254.169.254/32")
		}},
		{"tproxy-ipv6-custom", func(c *Config) {
			c.InboundInterceptionMode = TProxy
			c.TProxyMark, c.TProxyRouteTable = 0x100, 200
			c.IPv6 = true
			c.InboundPortsExclude = []uint16{9090, 15020}
			c.OutboundCIDRs = CIDRs{List: prefixes(t, "10.96.0.0/12", "fd00::/8")}
			c.OutboundPorts = []uint16{3306}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			rs, err := Rules(cfg)
			if err != nil {
				t.Fatalf("Rules: %v", err)
			}
			got := rs.String()
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got); run with -update if intended:\n%s", path, diff)
			}
		})
	}
}

// TestRulesDeterministic checks that the same config always renders the same
// text, and that IPv6 output names no IPv4 address and vice versa.
func TestRulesDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IPv6 = true
	cfg.OutboundCIDRsExclude = prefixes(t, "10.0.0.0/8", "fd00::/8")
	a, err := Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Rules(cfg)
	if a.String() != b.String() {
		t.Fatal("Rules is not deterministic")
	}
	if v4 := a.Restore(IPv4); strings.Contains(v4, "::") {
		t.Errorf("IPv4 rules mention an IPv6 address:\n%s", v4)
	}
	if v6 := a.Restore(IPv6); strings.Contains(v6, "127.0.0") || strings.Contains(v6, "10.0.0.0") {
		t.Errorf("IPv6 rules mention an IPv4 address:\n%s", v6)
	}
}

func TestRulesRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InboundInterceptionMode = TProxy
	cfg.TProxyRouteTable = 255
	_, err := Rules(cfg)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "TProxyRouteTable" || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("TPROXY on table 255: got %v, want a FieldError on TProxyRouteTable saying it is reserved", err)
	}
}

// TestTProxyRulesNeedNoConntrack keeps TPROXY mode free of everything that
// switches connection tracking on in a namespace: the nat table and the
// conntrack/state/connmark matches and targets.
func TestTProxyRulesNeedNoConntrack(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InboundInterceptionMode = TProxy
	cfg.IPv6 = true
	rs, err := Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rs.Families() {
		for _, tb := range rs.Tables(f) {
			if tb.Name != "mangle" {
				t.Errorf("%s: table %s in TPROXY mode, want mangle only", f, tb.Name)
			}
			for _, r := range tb.Rules {
				for _, bad := range []string{"conntrack", "state", "CONNMARK", "connmark", "REDIRECT", " CT "} {
					if strings.Contains(r, bad) {
						t.Errorf("%s: rule %q uses %s", f, r, bad)
					}
				}
			}
		}
	}
	if !rs.Routing.enabled() || rs.Routing.Mark != DefaultTProxyMark || rs.Routing.Table != DefaultTProxyRouteTable {
		t.Errorf("routing %+v, want mark %d table %d", rs.Routing, DefaultTProxyMark, DefaultTProxyRouteTable)
	}
}
