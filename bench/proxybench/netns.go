package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The netns pairs (direct-netns, nginx-netns, trellis) run in one topology,
// created on first use and removed when the benchmark ends (also after a
// failed start or ctrl-c), the same shape as test/e2e/sidecar:
//
//	root netns: bridge pb<pid> 10.89.X.1/24 (X from the pid), harness, trellis discovery (xDS on 10.89.X.1:15010)
//	   ├─ veth ═ eth0 10.89.X.10  netns pb<pid>-client: fortio load (`proxybench _load`), proxy A
//	   └─ veth ═ eth0 10.89.X.11  netns pb<pid>-server: echo server 0.0.0.0:8080, proxy B
//
// Nothing is routed out of the /24 and no forwarding or NAT is set up in the
// root namespace. The trellis pair installs `trellis proxy iptables` in both
// namespaces for its runs and removes the rules (--clean) when it stops, so
// direct-netns and nginx-netns see the same namespaces without capture.
type topology struct {
	bridge         string
	prefix         netip.Prefix
	gw             netip.Addr // bridge address: the control plane binds it
	client, server netns
	echoAddr       string // server's eth0:8080

	cleanups []func() // in reverse order
	echo     *proc
	cp       *proc  // trellis discovery, started by the first trellis run
	cpAddr   string // its xDS address
	cpMTLS   bool   // it runs the CA and the mTLS configuration
	caDir    string // the CA's directory (mTLS)
}

type netns struct {
	name string
	addr netip.Addr
}

const echoPort = 8080

// netnsAvailable says whether the netns pairs can run here (a plain skip
// otherwise: they need root and iproute2).
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return &SkipError{Reason: "needs root (network namespaces, veths, a bridge, iptables)"}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return &SkipError{Reason: "needs ip(8) (apt-get install iproute2)"}
	}
	return nil
}

// topology returns the netns topology, creating it on first use.
func (e *Env) topology(ctx context.Context) (*topology, error) {
	e.topoMu.Lock()
	defer e.topoMu.Unlock()
	if e.topo != nil || e.topoErr != nil {
		return e.topo, e.topoErr
	}
	t, err := newTopology(ctx, e)
	if err != nil {
		e.topoErr = fmt.Errorf("netns topology: %w", err)
		return nil, e.topoErr
	}
	e.topo = t
	return t, nil
}

// closeTopology removes the topology (called once at exit, after killAll).
func (e *Env) closeTopology() {
	e.topoMu.Lock()
	defer e.topoMu.Unlock()
	if e.topo != nil {
		e.topo.close()
		e.topo = nil
	}
}

func newTopology(ctx context.Context, e *Env) (t *topology, err error) {
	pid := os.Getpid()
	t = &topology{bridge: fmt.Sprintf("pb%d", pid%10000000)}
	t.prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, byte(pid % 256), 0}), 24)
	host := func(last byte) netip.Addr {
		a := t.prefix.Addr().As4()
		a[3] = last
		return netip.AddrFrom4(a)
	}
	t.gw = host(1)
	t.client = netns{name: t.bridge + "-client", addr: host(10)}
	t.server = netns{name: t.bridge + "-server", addr: host(11)}
	t.echoAddr = netip.AddrPortFrom(t.server.addr, echoPort).String()
	defer func() {
		if err != nil {
			t.close() // whatever was created so far
		}
	}()
	if out, _ := exec.Command("ip", "-o", "addr", "show", "to", t.gw.String()).CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
		return nil, fmt.Errorf("address %s already configured (left over from a killed run?):\n%s\nremove with: ip link del <device>; ip netns list | grep ^pb | xargs -n1 ip netns del", t.gw, out)
	}
	t.cleanups = append(t.cleanups, func() { _ = exec.Command("ip", "link", "del", t.bridge).Run() })
	if err := ipCmd("link", "add", "name", t.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	if err := ipCmd("addr", "add", netip.PrefixFrom(t.gw, 24).String(), "dev", t.bridge); err != nil {
		return nil, err
	}
	if err := ipCmd("link", "set", t.bridge, "up"); err != nil {
		return nil, err
	}
	for i, ns := range []netns{t.client, t.server} {
		veth := fmt.Sprintf("%sv%d", t.bridge, i)
		t.cleanups = append(t.cleanups, func() {
			_ = exec.Command("ip", "netns", "del", ns.name).Run()
			_ = exec.Command("ip", "link", "del", veth).Run()
		})
		for _, args := range [][]string{
			{"netns", "add", ns.name},
			{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name},
			{"link", "set", veth, "master", t.bridge},
			{"link", "set", veth, "up"},
			{"-n", ns.name, "link", "set", "lo", "up"},
			{"-n", ns.name, "addr", "add", netip.PrefixFrom(ns.addr, 24).String(), "dev", "eth0"},
			{"-n", ns.name, "link", "set", "eth0", "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
	}
	// The echo server of the netns pairs, in the server namespace.
	t.echo, err = startProc(ctx, e, "server-netns", "ip",
		[]string{"netns", "exec", t.server.name, e.Self, "_server", "-listen", fmt.Sprintf("0.0.0.0:%d", echoPort)}, nil, true)
	if err != nil {
		return nil, fmt.Errorf("echo server in %s: %w", t.server.name, err)
	}
	// Reachable from the client namespace, before any capture.
	url := "http://" + t.echoAddr + "/echo?size=16"
	if err := checkChainIn(ctx, e, t.client.name, url, "", 16); err != nil {
		return nil, fmt.Errorf("echo server from %s: %w", t.client.name, err)
	}
	return t, nil
}

func (t *topology) close() {
	if t.cp != nil {
		t.cp.stop()
	}
	if t.echo != nil {
		t.echo.stop()
	}
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nsRun runs name with args inside namespace ns and returns its output.
func nsRun(ns string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s %s: %v: %s", ns, filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// realPID is the process `ip netns exec` became: ip execs the command in
// place (same PID), but if a version forks instead, the measured process must
// be the child. It waits up to 2 s for pid's executable to be want.
func realPID(pid int, want string) (int, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		for _, p := range procTree(pid) {
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
			if err == nil && filepath.Base(exe) == filepath.Base(want) {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, errors.New("process " + filepath.Base(want) + " not found under pid " + fmt.Sprint(pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// directNetnsPair is the reference of the netns pairs: the client in its
// namespace talks to the echo server in the server namespace over the
// bridge, without proxies or capture.
type directNetnsPair struct{}

func init() { registerPair(directNetnsPair{}) }

func (directNetnsPair) Name() string         { return "direct-netns" }
func (directNetnsPair) Available(*Env) error { return netnsAvailable() }

func (directNetnsPair) Start(ctx context.Context, e *Env, _ string) (*Instance, error) {
	t, err := e.topology(ctx)
	if err != nil {
		return nil, err
	}
	return &Instance{Addr: t.echoAddr, Netns: t.client.name, Stop: func() {}}, nil
}
