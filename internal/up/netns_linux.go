package up

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// network is what --netns sets up in the root network namespace: a bridge
// carrying the first address of the subnet and, per workload, a namespace
// attached by a veth pair (inner end eth0), lo up:
//
//	bridge <Bridge> 10.77.0.1/24 ── veth <Bridge>v<i> ═ eth0 <addr>/24  netns <Bridge>-<workload>
//
// Nothing leaves the subnet: no forwarding or NAT is configured. remove
// deletes all of it; deleting a namespace also deletes its iptables rules
// and its end of the veth pair.
type network struct {
	bridge string
	addr   netip.Addr // the bridge's, where the control plane listens
	bits   int
	// made records what was created, in order, for remove.
	namespaces []string
	veths      []string
	bridgeUp   bool
}

// ipCmd runs ip(8) and names the command in its error.
func ipCmd(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netnsPreflight checks that --netns can run: root, ip and
// iptables-restore installed, the bridge name and its address unused.
func netnsPreflight(bridge string, addr netip.Addr) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("--netns needs root (network namespaces, veths, a bridge and iptables); run without --netns for loopback addresses")
	}
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("--netns needs %s in PATH (apt-get install iproute2 iptables): %w", tool, err)
		}
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		return fmt.Errorf("--netns: a network device named %s exists (another trellis up --netns, or left over: ip link del %s); pass --netns-bridge", bridge, bridge)
	}
	if out, err := exec.Command("ip", "-o", "addr", "show", "to", addr.String()).CombinedOutput(); err == nil && strings.TrimSpace(string(out)) != "" {
		return fmt.Errorf("--netns: address %s is already configured on this machine:\n%s\npass another --netns-subnet", addr, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetwork creates the bridge with its address, up.
func newNetwork(ctx context.Context, bridge string, prefix netip.Prefix) (*network, error) {
	n := &network{bridge: bridge, addr: prefix.Masked().Addr().Next(), bits: prefix.Bits()}
	if err := ipCmd(ctx, "link", "add", "name", bridge, "type", "bridge"); err != nil {
		return n, err
	}
	n.bridgeUp = true
	if err := ipCmd(ctx, "addr", "add", netip.PrefixFrom(n.addr, n.bits).String(), "dev", bridge); err != nil {
		return n, err
	}
	return n, ipCmd(ctx, "link", "set", bridge, "up")
}

// nsName is the namespace of a workload.
func (n *network) nsName(w Workload) string { return n.bridge + "-" + w.Name + "." + w.Namespace }

// addNamespace creates the workload's namespace with eth0 at addr.
func (n *network) addNamespace(ctx context.Context, ns string, addr netip.Addr) error {
	veth := fmt.Sprintf("%sv%d", n.bridge, len(n.veths))
	if err := ipCmd(ctx, "netns", "add", ns); err != nil {
		return err
	}
	n.namespaces = append(n.namespaces, ns)
	if err := ipCmd(ctx, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
		return err
	}
	n.veths = append(n.veths, veth)
	for _, args := range [][]string{
		{"link", "set", veth, "master", n.bridge},
		{"link", "set", veth, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", netip.PrefixFrom(addr, n.bits).String(), "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// removeNamespace deletes one namespace (its rules and veth pair with it).
func (n *network) removeNamespace(ns string) error {
	for i, x := range n.namespaces {
		if x == ns {
			n.namespaces = append(n.namespaces[:i:i], n.namespaces[i+1:]...)
			return ipCmd(context.Background(), "netns", "del", ns)
		}
	}
	return nil
}

// remove deletes the namespaces (their iptables rules and veth ends with
// them), any veth left, and the bridge. It returns what could not be
// removed.
func (n *network) remove() error {
	ctx := context.Background()
	var errs []string
	for _, ns := range n.namespaces {
		if err := ipCmd(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, v := range n.veths {
		if _, err := net.InterfaceByName(v); err == nil {
			if err := ipCmd(ctx, "link", "del", v); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if n.bridgeUp {
		if err := ipCmd(ctx, "link", "del", n.bridge); err != nil {
			errs = append(errs, err.Error())
		}
	}
	n.namespaces, n.veths, n.bridgeUp = nil, nil, false
	if len(errs) > 0 {
		return fmt.Errorf("removing the --netns network: %s", strings.Join(errs, "; "))
	}
	return nil
}

// dialIn connects to addr from inside namespace ns: the goroutine's
// thread enters it, dials and goes back to its own namespace before it is
// unlocked. The thread must not exit: children are started with
// Pdeathsig, which fires when the thread that forked them ends, and any
// thread may have forked one. Only if going back fails is the thread left
// locked, to end with the goroutine.
func dialIn(ns, addr string, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering netns %s: %w", ns, err)
			return
		}
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			c.Close()
		}
		if back := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); back == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
