package up

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// TestNetnsAddresses: the last byte is kept when free, else the next free
// address; ports become the service ports and the template renders with
// 0.0.0.0 and the namespace's loopback proxy.
func TestNetnsAddresses(t *testing.T) {
	ws := []Workload{
		{Name: "a", Namespace: "default", Address: netip.MustParseAddr("127.0.0.10"), Ports: []uint32{9080},
			AppPorts: map[uint32]uint16{9080: 41000}, runTemplate: "app --listen {{.AppAddress}} --outbound {{.Proxy}} --ip {{.Address}}"},
		{Name: "b", Namespace: "default", Address: netip.MustParseAddr("127.1.0.10"), AppPorts: map[uint32]uint16{}},
		{Name: "c", Namespace: "default", Address: netip.MustParseAddr("127.0.0.1"), AppPorts: map[uint32]uint16{}},
	}
	alloc := newAddrAllocator(netip.MustParsePrefix("10.77.0.0/24"))
	if err := netnsAddresses(ws, alloc, 15080, &network{bridge: "br"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"127.0.0.10": "10.77.0.10", "127.1.0.10": "10.77.0.2", "127.0.0.1": "10.77.0.3"}
	for from, to := range want {
		if got, _ := alloc.mapAddr(netip.MustParseAddr(from)); got.String() != to {
			t.Errorf("%s → %s, want %s", from, got, to)
		}
	}
	if got, _ := alloc.mapAddr(netip.MustParseAddr("127.0.0.77")); got.String() != "10.77.0.77" {
		t.Errorf("a new address: %s, want 10.77.0.77", got)
	}
	if _, ok := alloc.mapAddr(netip.MustParseAddr("192.168.1.1")); ok {
		t.Error("a non-loopback address was mapped")
	}
	if got := strings.Join(ws[0].Command, " "); got != "app --listen 0.0.0.0:9080 --outbound 127.0.0.1:15080 --ip 10.77.0.10" {
		t.Errorf("command %q", got)
	}
	if ws[0].Netns != "br-a.default" || ws[0].LocalAddress.String() != "127.0.0.10" {
		t.Errorf("netns %q local %s", ws[0].Netns, ws[0].LocalAddress)
	}
	many := make([]Workload, 6) // a /29 has 5 addresses besides the bridge's
	for i := range many {
		many[i] = Workload{Name: string(rune('a' + i)), Address: netip.AddrFrom4([4]byte{127, 0, 0, byte(20 + i)}), AppPorts: map[uint32]uint16{}}
	}
	if err := netnsAddresses(many, newAddrAllocator(netip.MustParsePrefix("10.77.0.0/29")), 15080, &network{}); err == nil || !strings.Contains(err.Error(), "no free address") {
		t.Errorf("full subnet: %v", err)
	}
}

// TestAddressOverlay: mapped WorkloadEntries carry the namespace address
// in Get, List and events; the underlying objects are not changed.
func TestAddressOverlay(t *testing.T) {
	st, err := sidecarStore(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	we := func(name, addr string) config.Config {
		return config.Config{Meta: config.Meta{Kind: schema.WorkloadEntry, Version: "v1", Namespace: "default", Name: name},
			Spec: &networking.WorkloadEntry{Address: addr}}
	}
	for _, c := range []config.Config{we("a", "127.0.0.10"), we("b", "127.0.0.99")} {
		if _, err := st.Create(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	o := &addressOverlay{Store: st, mapAddr: func(a netip.Addr) (netip.Addr, bool) {
		if a == netip.MustParseAddr("127.0.0.10") {
			return netip.MustParseAddr("10.77.0.10"), true
		}
		return netip.Addr{}, false
	}}
	addr := func(c config.Config) string { return c.Spec.(*networking.WorkloadEntry).GetAddress() }
	if c, _ := o.Get(schema.WorkloadEntry, "default", "a"); addr(c) != "10.77.0.10" {
		t.Errorf("Get a: %s", addr(c))
	}
	if c, _ := st.Get(schema.WorkloadEntry, "default", "a"); addr(c) != "127.0.0.10" {
		t.Errorf("underlying a changed: %s", addr(c))
	}
	l := o.List(schema.WorkloadEntry, "")
	if len(l) != 2 || addr(l[0]) != "10.77.0.10" || addr(l[1]) != "127.0.0.99" {
		t.Errorf("List: %v", l)
	}
	var (
		mu  sync.Mutex
		got []string
	)
	o.RegisterEventHandler(schema.WorkloadEntry, func(e config.Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, addr(*e.New))
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(got, ",") != "10.77.0.10,127.0.0.99" {
			return fmt.Errorf("events: %v", got)
		}
		return nil
	})
}

// TestNetnsBridgeTaken: a device with the bridge's name stops --netns
// before anything starts, naming it.
func TestNetnsBridgeTaken(t *testing.T) {
	requireNetns(t)
	dir, _ := bookinfoDir(t)
	cfg := testConfig(t, dir, nil)
	cfg.Netns = true
	cfg.NetnsBridge = "tuptaken"
	cfg.NetnsSubnet = netip.MustParsePrefix("10.199.77.0/24")
	if out, err := exec.Command("ip", "link", "add", cfg.NetnsBridge, "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", cfg.NetnsBridge).Run() })
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = u.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "a network device named tuptaken exists") {
		t.Fatalf("Run: %v, want the bridge name named", err)
	}
	if len(u.PIDs()) != 0 {
		t.Errorf("started %d processes", len(u.PIDs()))
	}
}
