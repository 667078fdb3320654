package capture

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name       string
		mutate     func(c *Config)
		wantFields []string // fields named by the FieldErrors, in order
	}{
		{"default is valid", func(c *Config) {}, nil},
		{"zero ports", func(c *Config) { c.ProxyPort, c.InboundCapturePort = 0, 0 }, []string{"ProxyPort", "InboundCapturePort"}},
		{"same capture ports", func(c *Config) { c.InboundCapturePort = c.ProxyPort }, []string{"InboundCapturePort"}},
		{"no owner", func(c *Config) { c.ProxyUIDs, c.ProxyGIDs = nil, nil }, []string{"ProxyUIDs"}},
		{"gid only is fine", func(c *Config) { c.ProxyUIDs = nil }, nil},
		{"tproxy", func(c *Config) { c.InboundInterceptionMode = TProxy }, nil},
		{"tproxy without a mark", func(c *Config) { c.InboundInterceptionMode, c.TProxyMark = TProxy, 0 }, []string{"TProxyMark"}},
		{"tproxy on the main table", func(c *Config) { c.InboundInterceptionMode, c.TProxyRouteTable = TProxy, 254 }, []string{"TProxyRouteTable"}},
		{"tproxy with an inbound port list", func(c *Config) {
			c.InboundInterceptionMode, c.InboundPorts = TProxy, Ports{List: []uint16{9080}}
		}, []string{"InboundPorts"}},
		{"redirect ignores the tproxy fields", func(c *Config) { c.TProxyMark, c.TProxyRouteTable = 0, 0 }, nil},
		{"unknown mode", func(c *Config) { c.InboundInterceptionMode = "NAT" }, []string{"InboundInterceptionMode"}},
		{"empty mode is REDIRECT", func(c *Config) { c.InboundInterceptionMode = "" }, nil},
		{"all and list", func(c *Config) { c.InboundPorts.List = []uint16{80} }, []string{"InboundPorts"}},
		{"proxy port included", func(c *Config) { c.InboundPorts = Ports{List: []uint16{80, 15021}} }, []string{"InboundPorts[1]"}},
		{"tunnel port included", func(c *Config) { c.InboundPorts = Ports{List: []uint16{15008}} }, []string{"InboundPorts[0]"}},
		{"zero exclude port", func(c *Config) { c.OutboundPortsExclude = []uint16{22, 0} }, []string{"OutboundPortsExclude[1]"}},
		{"invalid prefix", func(c *Config) { c.OutboundCIDRsExclude = []netip.Prefix{{}} }, []string{"OutboundCIDRsExclude[0]"}},
		{"cidrs all and list", func(c *Config) {
			c.OutboundCIDRs.List = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}, []string{"OutboundCIDRs"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *FieldError
					if !errors.As(e, &fe) {
						t.Fatalf("error %v is not a *FieldError", e)
					}
					if !strings.Contains(e.Error(), fe.Field) {
						t.Errorf("error %q does not name its field %s", e, fe.Field)
					}
					got = append(got, fe.Field)
				}
			}
			if diff := cmp.Diff(tc.wantFields, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

func TestParsers(t *testing.T) {
	ports, err := ParsePortList(" 80, 443,,15021 ")
	if err != nil || !slices.Equal(ports, []uint16{80, 443, 15021}) {
		t.Errorf("ParsePortList: %v, %v", ports, err)
	}
	for _, bad := range []string{"0", "65536", "http", "-1", "80-90", "*"} {
		if _, err := ParsePortList(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParsePortList(%q): got %v, want an error quoting the item", bad, err)
		}
	}
	if p, err := ParsePorts("*"); err != nil || !p.All {
		t.Errorf("ParsePorts(*): %+v, %v", p, err)
	}
	if p, err := ParsePorts(""); err != nil || p.All || len(p.List) != 0 {
		t.Errorf("ParsePorts(\"\"): %+v, %v", p, err)
	}
	cidrs, err := ParseCIDRList("10.1.2.3/8, fd00::1/64,192.168.1.1")
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/64"),
		netip.MustParsePrefix("192.168.1.1/32"),
	}
	if err != nil || !slices.Equal(cidrs, want) {
		t.Errorf("ParseCIDRList: %v, %v", cidrs, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0", "fe80::1%eth0/64", "*", "x/8"} {
		if _, err := ParseCIDRList(bad); err == nil {
			t.Errorf("ParseCIDRList(%q): want an error", bad)
		}
	}
	if c, err := ParseCIDRs(" * "); err != nil || !c.All {
		t.Errorf("ParseCIDRs(*): %+v, %v", c, err)
	}
	if ids, err := ParseIDList("1337,0"); err != nil || !slices.Equal(ids, []uint32{1337, 0}) {
		t.Errorf("ParseIDList: %v, %v", ids, err)
	}
	if _, err := ParseIDList("istio-proxy"); err == nil {
		t.Error("ParseIDList(istio-proxy): want an error")
	}
}

// FuzzParse checks that the parsers never panic and that whatever they
// accept renders rules without error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"*", "", "80,443", "10.0.0.0/8,fd00::/8", " 1 , 2 ", "::ffff:1.2.3.4/128"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg := DefaultConfig()
		cfg.IPv6 = true
		if p, err := ParsePorts(s); err == nil {
			cfg.InboundPorts = p
			if !p.All {
				cfg.InboundPorts.List = slices.DeleteFunc(p.List, func(x uint16) bool { return x >= 15008 && x <= 15090 })
			}
		}
		if l, err := ParsePortList(s); err == nil {
			cfg.OutboundPortsExclude = l
		}
		if c, err := ParseCIDRs(s); err == nil {
			cfg.OutboundCIDRs = c
		}
		if l, err := ParseCIDRList(s); err == nil {
			cfg.OutboundCIDRsExclude = l
		}
		if _, err := Rules(cfg); err != nil {
			t.Fatalf("parsed %q but Rules failed: %v", s, err)
		}
	})
}
