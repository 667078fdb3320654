package up

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of --netns.
const (
	DefaultNetnsBridge = "trellis0"
	// ProxyGID is the group the sidecars run as with --netns: the capture
	// rules (`trellis proxy iptables`, -u/-g 1337) let its traffic out
	// uncaptured.
	ProxyGID = 1337
)

// DefaultNetnsSubnet is the bridge's subnet with --netns.
var DefaultNetnsSubnet = netip.MustParsePrefix("10.77.0.0/24")

// addrAllocator gives each loopback WorkloadEntry address an address in
// the --netns subnet, keeping its last byte when that is a free host
// address of a /24 (127.0.0.12 → 10.77.0.12), else the next free one.
// An address keeps its mapping for the whole run (a WorkloadEntry removed
// and added again gets the same one). The control plane's overlay and up
// share it, so that a WorkloadEntry added while running has its namespace
// address in the mesh from its first event.
type addrAllocator struct {
	subnet netip.Prefix
	bridge netip.Addr

	mu   sync.Mutex
	m    map[netip.Addr]netip.Addr
	used map[netip.Addr]bool
}

func newAddrAllocator(subnet netip.Prefix) *addrAllocator {
	subnet = subnet.Masked()
	bridge := subnet.Addr().Next()
	return &addrAllocator{subnet: subnet, bridge: bridge, m: map[netip.Addr]netip.Addr{}, used: map[netip.Addr]bool{bridge: true}}
}

// get returns orig's namespace address, allocating it on first use.
func (a *addrAllocator) get(orig netip.Addr) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if to, ok := a.m[orig]; ok {
		return to, nil
	}
	free := func(x netip.Addr) bool {
		return a.subnet.Contains(x) && x != a.subnet.Addr() && !a.used[x] && a.subnet.Contains(x.Next())
	}
	b := a.subnet.Addr().As4()
	if orig.Is4() {
		b[3] = orig.As4()[3]
	}
	to := netip.AddrFrom4(b)
	if a.subnet.Bits() != 24 || !orig.Is4() || !free(to) {
		for to = a.bridge.Next(); a.subnet.Contains(to) && !free(to); to = to.Next() {
		}
		if !free(to) {
			return netip.Addr{}, fmt.Errorf("--netns-subnet %s has no free address left (%d workloads)", a.subnet, len(a.m))
		}
	}
	a.used[to] = true
	a.m[orig] = to
	return to, nil
}

// mapAddr is the overlay's view: loopback addresses only.
func (a *addrAllocator) mapAddr(orig netip.Addr) (netip.Addr, bool) {
	if !orig.IsLoopback() {
		return netip.Addr{}, false
	}
	to, err := a.get(orig)
	return to, err == nil
}

// netnsAddresses moves each workload to its namespace: the WorkloadEntry
// address to LocalAddress, the allocated one to Address, Netns, the
// application's host (0.0.0.0: the sidecar's inbound passthrough dials
// the namespace address) and ports (the service ports themselves), and
// renders the run template again.
func netnsAddresses(ws []Workload, alloc *addrAllocator, proxyPort uint16, n *network) error {
	for i := range ws {
		w := &ws[i]
		a, err := alloc.get(w.Address)
		if err != nil {
			return fmt.Errorf("WorkloadEntry %s: %w", w.ID(), err)
		}
		w.LocalAddress, w.Address = w.Address, a
		w.Netns = n.nsName(*w)
		w.appHost = "0.0.0.0"
		for _, p := range w.Ports {
			w.AppPorts[p] = uint16(p)
		}
		if w.runTemplate != "" {
			w.Command, err = render(w.runTemplate, RunData{
				Name: w.Name, Namespace: w.Namespace, Address: a.String(), Labels: w.Labels,
				Proxy:    netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), proxyPort).String(),
				appPorts: w.AppPorts, appHost: w.appHost,
			})
			if err != nil {
				return fmt.Errorf("invalid configuration: WorkloadEntry %s in %s: metadata.annotations[%s]: %w", w.ID(), w.Source.File, AnnotationRun, err)
			}
		}
	}
	return nil
}

// onBridge moves a control plane address on a loopback host to the
// bridge's address, where the namespaces reach it.
func onBridge(addr string, bridge netip.Addr) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q: %w", addr, err)
	}
	if ap.Addr().IsLoopback() {
		ap = netip.AddrPortFrom(bridge, ap.Port())
	}
	return ap.String(), nil
}

// inNetns prefixes argv to run in namespace ns.
func inNetns(ns string, argv []string) []string {
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// capture creates the workload's namespace and installs the capture rules
// in it.
func (r *running) capture(ctx context.Context, w Workload) error {
	name := "network namespace " + w.Netns
	r.up.progress(name, "creating ("+w.Address.String()+" on "+r.net.bridge+")")
	if err := r.net.addNamespace(ctx, w.Netns, w.Address); err != nil {
		return &StartError{Component: name, Err: err, Fix: "remove what is left of an earlier run (ip netns del " + w.Netns + ") or pass --netns-bridge"}
	}
	name = "traffic capture of " + w.ID()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := inNetns(w.Netns, []string{r.up.cfg.Executable, "proxy", "iptables",
		"--proxy-uid", "1337", "--proxy-gid", strconv.Itoa(ProxyGID)})
	out, err := exec.CommandContext(cctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return &StartError{Component: name, Err: fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out))),
			Fix: "trellis proxy iptables needs iptables-restore (apt-get install iptables) and the nat table"}
	}
	r.up.progress(name, "iptables rules installed in "+w.Netns)
	return nil
}
