package framework

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/testing/netnstest"
)

// Network namespaces for end-to-end tests with real traffic capture (root
// only). A Bridge lives in the test's (root) network namespace and carries
// the first address of a private /24; each Netns is a namespace attached to
// it by a veth pair whose inner end is called eth0:
//
//	root netns: bridge <name> 10.x.y.1/24 ── veth <name>v<i> ═╦═ eth0 10.x.y.z/24  netns <name>-<workload>
//	                                                             ║  lo up
//
// No route leaves the /24 and no forwarding or NAT is configured in the root
// namespace, so the test can reach nothing but its own namespaces. All of it
// is removed in t.Cleanup, even when the test fails.

// RequireNetns fails the test (it never skips: an end-to-end test that does
// not run must not look green) unless the process is root and the tools
// the namespace tests use are installed.
func RequireNetns(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (CAP_NET_ADMIN and CAP_SYS_ADMIN, to create network namespaces, veths and a bridge, and to run iptables)")
	}
	for _, tool := range append([]string{"ip", "iptables-restore", "iptables-save"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s in PATH (%v; apt-get install iproute2 iptables)", tool, err))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("this test needs real network namespaces; missing: %s", strings.Join(missing, "; "))
	}
}

// Bridge is a Linux bridge in the test's network namespace.
type Bridge struct {
	// Name is the bridge device, also the prefix of the namespaces.
	Name string
	// Prefix is the /24 (for example 10.88.0.0/24); Addr is its .1, which
	// the bridge carries.
	Prefix netip.Prefix
	Addr   netip.Addr

	t      testing.TB
	nextID int
}

// NewBridge creates a bridge named name with the first address of prefix
// (a /24), up. It fails if a device of that name exists, or if the address
// is already in use (a crashed earlier run: the message says how to clean
// up).
func NewBridge(t testing.TB, name string, prefix netip.Prefix) *Bridge {
	t.Helper()
	if len(name) > 10 {
		t.Fatalf("bridge name %q: at most 10 characters (veth names add a suffix; Linux allows 15)", name)
	}
	if prefix.Bits() != 24 || !prefix.Addr().Is4() {
		t.Fatalf("bridge prefix %s: want an IPv4 /24", prefix)
	}
	b := &Bridge{Name: name, Prefix: prefix.Masked(), Addr: prefix.Masked().Addr().Next(), t: t}
	if out, err := exec.Command("ip", "-o", "addr", "show", "to", b.Addr.String()).CombinedOutput(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("address %s is already configured in the root namespace (left over from an interrupted run?):\n%s\nremove it with: ip link del <device>; ip netns list | grep <prefix> | xargs -n1 ip netns del", b.Addr, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", b.Name).Run() })
	IP(t, "link", "add", "name", b.Name, "type", "bridge")
	IP(t, "addr", "add", netip.PrefixFrom(b.Addr, 24).String(), "dev", b.Name)
	IP(t, "link", "set", b.Name, "up")
	return b
}

// Netns is a network namespace attached to a Bridge.
type Netns struct {
	// Name is the namespace (/run/netns/<Name>).
	Name string
	// Addr is the address of its eth0.
	Addr netip.Addr
}

// AddNetns creates namespace <bridge>-<workload> with eth0 at addr (inside
// the bridge's /24), lo up, attached to the bridge. It is deleted, with its
// veth pair, when the test ends.
func (b *Bridge) AddNetns(t testing.TB, workload string, addr netip.Addr) *Netns {
	t.Helper()
	if !b.Prefix.Contains(addr) || addr == b.Addr {
		t.Fatalf("netns %s: address %s not a host address of %s", workload, addr, b.Prefix)
	}
	ns := &Netns{Name: b.Name + "-" + workload, Addr: addr}
	veth := fmt.Sprintf("%sv%d", b.Name, b.nextID)
	b.nextID++
	t.Cleanup(func() {
		// Deleting the namespace destroys eth0 and so its peer.
		_ = exec.Command("ip", "netns", "del", ns.Name).Run()
		_ = exec.Command("ip", "link", "del", veth).Run()
	})
	IP(t, "netns", "add", ns.Name)
	IP(t, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	IP(t, "link", "set", veth, "master", b.Name)
	IP(t, "link", "set", veth, "up")
	IP(t, "-n", ns.Name, "link", "set", "lo", "up")
	IP(t, "-n", ns.Name, "addr", "add", netip.PrefixFrom(addr, 24).String(), "dev", "eth0")
	IP(t, "-n", ns.Name, "link", "set", "eth0", "up")
	return ns
}

// IP runs ip(8) with args and fails the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Command returns a command that runs name with args inside the namespace
// (through `ip netns exec`, which needs root; the command's credentials
// may be changed with SysProcAttr.Credential as long as the UID stays 0).
func (ns *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs name with args inside the namespace and returns its combined
// output; it fails the test on error.
func (ns *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ns.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in netns %s: %s %s: %v\n%s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Do runs fn on a fresh OS thread that has entered the namespace: sockets
// fn creates belong to it (and keep belonging to it afterwards, whatever
// thread uses them). The thread is never unlocked, so it exits with the
// goroutine instead of carrying the namespace back into the scheduler.
func (ns *Netns) Do(fn func() error) error { return netnstest.Do(ns.Name, fn) }

// Listen opens a listening socket inside the namespace; it is closed when
// the test ends.
func (ns *Netns) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s %s in netns %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// DialContext connects from inside the namespace, as a process of the test's
// credentials (root) would: the connection is subject to the namespace's
// iptables rules. It fits http.Transport.DialContext.
func (ns *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
