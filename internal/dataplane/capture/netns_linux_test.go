package capture

// End-to-end tests in real network namespaces (root only): two namespaces
// joined by a veth pair, the capture rules applied in the first ("app"), and
// real TCP connections checked for where they land.
//
//	netns app (rules applied)                      netns remote
//	  10.99.0.1/24, fd99::1/64  ◄──── veth ────►    10.99.0.2/24, 10.99.1.2/24, fd99::2/64
//	  :15001 outbound capture                       :8080, :8081 real servers
//	  :15006 inbound capture
//	  :9090 app, :9091 app (excluded), :15021 health
//	  route 10.99.1.0/24 via 10.99.0.2
//
// Every listener answers a connection with one line, "<name> <address>",
// where the address is the original destination (capture listeners, via
// OriginalDst) or the local address (everything else), so a client learns
// exactly where its connection went.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trellismesh/trellis/internal/testing/netnstest"
)

const (
	appUID   = 1000 // an ordinary application user
	appGID   = 1000
	proxyUID = DefaultProxyUID
	proxyGID = DefaultProxyGID
)

// requireNetnsTools fails (it never skips: a test that does not run must
// not look green) unless the process is root and the tools are installed,
// saying what is missing, as test/framework.RequireNetns does for the
// end-to-end tests (not called: test/framework links the control plane and
// the Kubernetes clients into this package's test binary).
func requireNetnsTools(t *testing.T, backend Backend) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (CAP_NET_ADMIN and CAP_SYS_ADMIN, to create network namespaces and veths and to run iptables; CAP_SETUID, to connect as the application and proxy users): run go test as root")
	}
	for _, tool := range []string{backend.tool(IPv4, "restore"), backend.tool(IPv4, "save"), backend.tool(IPv6, "restore")} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s in PATH (%v; apt-get install iptables)", tool, err))
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, fmt.Sprintf("ip in PATH (%v; apt-get install iproute2)", err))
	}
	if len(missing) > 0 {
		t.Fatalf("this test needs real network namespaces; missing: %s", strings.Join(missing, "; "))
	}
}

// topology is the two namespaces and their servers.
type topology struct {
	app, remote string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	var tok [3]byte
	_, _ = rand.Read(tok[:])
	id := hex.EncodeToString(tok[:])
	tp := &topology{app: "trellis-cap-" + id + "-app", remote: "trellis-cap-" + id + "-remote"}
	vethApp, vethRemote := "tc"+id+"a", "tc"+id+"r"
	t.Cleanup(func() {
		// Deleting the namespaces also deletes the veth pair. Best effort:
		// they may not exist if setup failed early.
		_ = exec.Command("ip", "netns", "del", tp.app).Run()
		_ = exec.Command("ip", "netns", "del", tp.remote).Run()
	})
	ipCmd(t, "netns", "add", tp.app)
	ipCmd(t, "netns", "add", tp.remote)
	ipCmd(t, "link", "add", vethApp, "netns", tp.app, "type", "veth", "peer", "name", vethRemote, "netns", tp.remote)
	for _, c := range [][]string{
		{"-n", tp.app, "link", "set", "lo", "up"},
		{"-n", tp.app, "link", "set", vethApp, "up"},
		{"-n", tp.app, "addr", "add", "10.99.0.1/24", "dev", vethApp},
		{"-n", tp.app, "addr", "add", "fd99::1/64", "dev", vethApp, "nodad"},
		{"-n", tp.app, "route", "add", "10.99.1.0/24", "via", "10.99.0.2"},
		{"-n", tp.remote, "link", "set", "lo", "up"},
		{"-n", tp.remote, "link", "set", vethRemote, "up"},
		{"-n", tp.remote, "addr", "add", "10.99.0.2/24", "dev", vethRemote},
		{"-n", tp.remote, "addr", "add", "10.99.1.2/24", "dev", vethRemote},
		{"-n", tp.remote, "addr", "add", "fd99::2/64", "dev", vethRemote, "nodad"},
	} {
		ipCmd(t, c...)
	}
	return tp
}

// serve listens on addr inside netns ns and answers each connection with
// "<name> <address>\n". With capture set, the address is OriginalDst's.
func serve(t *testing.T, ns, addr, name string, capture bool) {
	t.Helper()
	serveAs(t, ns, addr, name, capture, -1, net.ListenConfig{})
}

// serveTransparent is a TPROXY capture listener run as the proxy's user:
// IP_TRANSPARENT set, and the address answered is the local one (the
// original destination). The user matters: the rules tell the proxy's
// packets by the socket's file credentials, which an accepted socket takes
// from the thread calling accept.
func serveTransparent(t *testing.T, ns, addr, name string) {
	t.Helper()
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var sockErr error
		if err := c.Control(func(fd uintptr) {
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
			if sockErr == nil && network == "tcp6" {
				sockErr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
			}
		}); err != nil {
			return err
		}
		return sockErr
	}}
	serveAs(t, ns, addr, name, false, proxyUID, lc)
}

// serveAs runs the listener and its accept loop on a thread locked in ns
// (discarded afterwards, see netnstest.Do) with file-system UID uid (-1 keeps
// root's).
func serveAs(t *testing.T, ns, addr, name string, capture bool, uid int, lc net.ListenConfig) {
	t.Helper()
	ready := make(chan error, 1)
	var ln net.Listener
	var wg sync.WaitGroup
	wg.Go(func() {
		err := netnstest.Enter(ns)
		if err == nil && uid >= 0 {
			err = unix.Setfsuid(uid)
		}
		if err == nil {
			ln, err = lc.Listen(context.Background(), "tcp", addr)
		}
		ready <- err
		if err != nil {
			return
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			answer(c.(*net.TCPConn), name, capture)
		}
	})
	if err := <-ready; err != nil {
		wg.Wait()
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// answer writes "<name> <address>" and closes the connection.
func answer(tc *net.TCPConn, name string, capture bool) {
	var where string
	if capture {
		dst, err := OriginalDst(tc)
		if err != nil {
			where = "error:" + strings.ReplaceAll(err.Error(), " ", "_")
		} else {
			where = dst.String()
		}
	} else {
		ap := tc.LocalAddr().(*net.TCPAddr).AddrPort()
		where = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	_ = tc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = fmt.Fprintf(tc, "%s %s\n", name, where)
	tc.Close()
}

// dial connects from inside ns to addr with the given file-system UID and
// GID (the credentials iptables' owner match sees on the socket; -1 keeps
// root's) and returns the line the server answered.
func dial(ns string, uid, gid int, addr string) (string, error) {
	var line string
	err := netnstest.Do(ns, func() error {
		// setfsuid/setfsgid change only this (locked, to-be-discarded)
		// thread's credentials; the socket's file records them at creation.
		if gid >= 0 {
			if err := unix.Setfsgid(gid); err != nil {
				return fmt.Errorf("setfsgid %d: %w", gid, err)
			}
		}
		if uid >= 0 {
			if err := unix.Setfsuid(uid); err != nil {
				return fmt.Errorf("setfsuid %d: %w", uid, err)
			}
			if cur, _ := unix.SetfsuidRetUid(-1); cur != uid {
				return fmt.Errorf("fsuid is %d, want %d", cur, uid)
			}
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading answer: %w", err)
		}
		line = strings.TrimSpace(line)
		return nil
	})
	return line, err
}

// e2eConfig is Istio's default capture plus one exclusion of each kind.
func e2eConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.IPv6 = true
	cfg.InboundPortsExclude = []uint16{9091}
	cfg.OutboundPortsExclude = []uint16{8081}
	cfg.OutboundCIDRsExclude = prefixes(t, "10.99.1.0/24")
	return cfg
}

func apply(t *testing.T, ns string, ipt *Iptables, rs Ruleset) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := netnstest.Do(ns, func() error { return ipt.Apply(ctx, rs) }); err != nil {
		t.Fatalf("Apply in %s: %v", ns, err)
	}
}

func saveAll(t *testing.T, ns string, ipt *Iptables) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out string
	if err := netnstest.Do(ns, func() error {
		v4, err := ipt.Save(ctx, IPv4)
		if err != nil {
			return err
		}
		v6, err := ipt.Save(ctx, IPv6)
		out = v4 + v6
		return err
	}); err != nil {
		t.Fatalf("iptables-save in %s: %v", ns, err)
	}
	return out
}

type probe struct {
	name     string
	from     string // "app" or "remote"
	uid, gid int
	addr     string
	want     string
}

func runProbes(t *testing.T, tp *topology, probes []probe) {
	t.Helper()
	for _, p := range probes {
		ns := tp.app
		if p.from == "remote" {
			ns = tp.remote
		}
		got, err := dial(ns, p.uid, p.gid, p.addr)
		if err != nil {
			t.Errorf("%s: dial %s from %s (uid %d gid %d): %v", p.name, p.addr, p.from, p.uid, p.gid, err)
			continue
		}
		if got != p.want {
			t.Errorf("%s: dial %s from %s (uid %d gid %d) reached %q, want %q", p.name, p.addr, p.from, p.uid, p.gid, got, p.want)
		}
	}
}

// captureProbes are where connections must land with Istio's default
// capture plus e2eConfig's exclusions, whatever the mode.
func captureProbes() []probe {
	return []probe{
		{"app outbound is captured", "app", appUID, appGID, "10.99.0.2:8080", "outbound-capture 10.99.0.2:8080"},
		{"proxy UID is not captured", "app", proxyUID, appGID, "10.99.0.2:8080", "remote 10.99.0.2:8080"},
		{"proxy GID is not captured", "app", appUID, proxyGID, "10.99.0.2:8080", "remote 10.99.0.2:8080"},
		{"excluded outbound port", "app", appUID, appGID, "10.99.0.2:8081", "remote 10.99.0.2:8081"},
		{"excluded outbound CIDR", "app", appUID, appGID, "10.99.1.2:8080", "remote 10.99.1.2:8080"},
		{"app to localhost", "app", appUID, appGID, "127.0.0.1:9090", "app 127.0.0.1:9090"},
		{"app to itself by pod IP", "app", appUID, appGID, "10.99.0.1:9090", "app 10.99.0.1:9090"},
		{"proxy to pod IP goes inbound", "app", proxyUID, proxyGID, "10.99.0.1:9090", "inbound-capture 10.99.0.1:9090"},
		{"inbound is captured", "remote", -1, -1, "10.99.0.1:9090", "inbound-capture 10.99.0.1:9090"},
		{"excluded inbound port", "remote", -1, -1, "10.99.0.1:9091", "app-excluded 10.99.0.1:9091"},
		{"15021 is never captured", "remote", -1, -1, "10.99.0.1:15021", "health 10.99.0.1:15021"},
		{"IPv6 app outbound is captured", "app", appUID, appGID, "[fd99::2]:8080", "outbound-capture [fd99::2]:8080"},
		{"IPv6 proxy is not captured", "app", proxyUID, proxyGID, "[fd99::2]:8080", "remote [fd99::2]:8080"},
		{"IPv6 inbound is captured", "remote", -1, -1, "[fd99::1]:9090", "inbound-capture [fd99::1]:9090"},
	}
}

// applyTwice applies rs twice in the app namespace (re-applying must leave
// one copy of every rule) and returns iptables-save's output.
func applyTwice(t *testing.T, tp *topology, ipt *Iptables, rs Ruleset) string {
	t.Helper()
	apply(t, tp.app, ipt, rs)
	apply(t, tp.app, ipt, rs)
	saved := saveAll(t, tp.app, ipt)
	if n := strings.Count(saved, "-A OUTPUT -p tcp -j ISTIO_OUTPUT"); n != 2 { // once per family
		t.Errorf("after two Applies, OUTPUT jumps to ISTIO_OUTPUT %d times, want 2 (one per family):\n%s", n, saved)
	}
	return saved
}

// TestCaptureNetns applies the rules in a real namespace with each backend
// and checks where connections land, then removes them.
func TestCaptureNetns(t *testing.T) {
	for _, backend := range []Backend{BackendDefault, BackendNFT, BackendLegacy} {
		name := string(backend)
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			requireNetnsTools(t, backend)
			tp := newTopology(t)
			serve(t, tp.app, ":15001", "outbound-capture", true)
			serve(t, tp.app, ":15006", "inbound-capture", true)
			serve(t, tp.app, ":9090", "app", false)
			serve(t, tp.app, ":9091", "app-excluded", false)
			serve(t, tp.app, ":15021", "health", false)
			serve(t, tp.remote, ":8080", "remote", false)
			serve(t, tp.remote, ":8081", "remote", false)

			rs, err := Rules(e2eConfig(t))
			if err != nil {
				t.Fatal(err)
			}
			ipt, err := NewIptables(ExecRunner{}, backend)
			if err != nil {
				t.Fatal(err)
			}
			applyTwice(t, tp, ipt, rs)
			runProbes(t, tp, captureProbes())
			// REDIRECT is NAT: every captured connection is tracked (the
			// TPROXY test asserts the opposite with the same counter).
			if n := conntrackEntries(t, tp.app); n == 0 {
				t.Error("REDIRECT mode left no conntrack entries; the conntrack counter is not seeing the namespace")
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i := range 2 { // Remove is idempotent
				if err := netnstest.Do(tp.app, func() error { return ipt.Remove(ctx, true) }); err != nil {
					t.Fatalf("Remove #%d: %v", i+1, err)
				}
			}
			if saved := saveAll(t, tp.app, ipt); strings.Contains(saved, "ISTIO_") {
				t.Errorf("after Remove, iptables-save still shows ISTIO_ rules:\n%s", saved)
			}
			runProbes(t, tp, []probe{
				{"after Remove outbound is direct", "app", appUID, appGID, "10.99.0.2:8080", "remote 10.99.0.2:8080"},
				{"after Remove inbound is direct", "remote", -1, -1, "10.99.0.1:9090", "app 10.99.0.1:9090"},
			})
		})
	}
}

// conntrackEntries counts the namespace's connection tracking entries
// (/proc/thread-self/net/nf_conntrack: /proc/net would show the process's
// namespace, not the entered thread's).
func conntrackEntries(t *testing.T, ns string) int {
	t.Helper()
	var n int
	if err := netnstest.Do(ns, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/nf_conntrack")
		if err != nil {
			return fmt.Errorf("reading conntrack table (is nf_conntrack loaded? modprobe nf_conntrack): %w", err)
		}
		n = strings.Count(string(b), "\n")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCaptureNetnsTProxy applies TPROXY mode's rules and routing in a real
// namespace and checks where connections land, that no connection was
// tracked (the point of the mode), and that removal restores direct paths.
func TestCaptureNetnsTProxy(t *testing.T) {
	for _, backend := range []Backend{BackendNFT, BackendLegacy} {
		t.Run(string(backend), func(t *testing.T) {
			requireNetnsTools(t, backend)
			tp := newTopology(t)
			serveTransparent(t, tp.app, ":15001", "outbound-capture")
			serveTransparent(t, tp.app, ":15006", "inbound-capture")
			serve(t, tp.app, ":9090", "app", false)
			serve(t, tp.app, ":9091", "app-excluded", false)
			serve(t, tp.app, ":15021", "health", false)
			serve(t, tp.remote, ":8080", "remote", false)
			serve(t, tp.remote, ":8081", "remote", false)

			cfg := e2eConfig(t)
			cfg.InboundInterceptionMode = TProxy
			rs, err := Rules(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ipt, err := NewIptables(ExecRunner{}, backend)
			if err != nil {
				t.Fatal(err)
			}
			saved := applyTwice(t, tp, ipt, rs)
			if strings.Contains(saved, "*nat") {
				t.Errorf("TPROXY mode created a nat table:\n%s", saved)
			}
			var rules string
			if err := netnstest.Do(tp.app, func() (err error) {
				rules, err = ExecRunner{}.Run(context.Background(), "", "ip", "-4", "rule", "list")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(rules, "fwmark 0x539 lookup 133"); n != 1 {
				t.Errorf("after two Applies, %d policy rules for the mark, want 1:\n%s", n, rules)
			}

			runProbes(t, tp, captureProbes())
			if n := conntrackEntries(t, tp.app); n != 0 {
				t.Errorf("TPROXY mode tracked %d connections in the namespace, want none", n)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i := range 2 { // both are idempotent
				if err := netnstest.Do(tp.app, func() error {
					if err := ipt.Remove(ctx, true); err != nil {
						return err
					}
					return ipt.RemoveRouting(ctx, rs.Routing, true)
				}); err != nil {
					t.Fatalf("Remove #%d: %v", i+1, err)
				}
			}
			if saved := saveAll(t, tp.app, ipt); strings.Contains(saved, "ISTIO_") {
				t.Errorf("after Remove, iptables-save still shows ISTIO_ rules:\n%s", saved)
			}
			if err := netnstest.Do(tp.app, func() (err error) {
				rules, err = ExecRunner{}.Run(ctx, "", "ip", "-4", "rule", "list")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(rules, "0x539") {
				t.Errorf("after RemoveRouting the policy rule remains:\n%s", rules)
			}
			runProbes(t, tp, []probe{
				{"after Remove outbound is direct", "app", appUID, appGID, "10.99.0.2:8080", "remote 10.99.0.2:8080"},
				{"after Remove inbound is direct", "remote", -1, -1, "10.99.0.1:9090", "app 10.99.0.1:9090"},
			})
		})
	}
}

// TestRemoveLeavesOtherRules checks on a real namespace that Remove deletes
// only what it owns: a foreign rule in OUTPUT and a foreign chain survive,
// and Remove on a namespace that never had capture rules succeeds.
func TestRemoveLeavesOtherRules(t *testing.T) {
	requireNetnsTools(t, BackendDefault)
	tp := newTopology(t)
	ipt, err := NewIptables(nil, BackendDefault)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := netnstest.Do(tp.app, func() error { return ipt.Remove(ctx, true) }); err != nil {
		t.Fatalf("Remove on a clean namespace: %v", err)
	}
	foreign := "*nat\n:KEEP_ME - [0:0]\n-A KEEP_ME -p tcp --dport 1 -j RETURN\n-A OUTPUT -p tcp --dport 2 -j KEEP_ME\nCOMMIT\n"
	if err := netnstest.Do(tp.app, func() error {
		_, err := ExecRunner{}.Run(ctx, foreign, "iptables-restore", "--noflush")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rs, err := Rules(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	apply(t, tp.app, ipt, rs)
	if err := netnstest.Do(tp.app, func() error { return ipt.Remove(ctx, false) }); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	saved := saveAll(t, tp.app, ipt)
	if strings.Contains(saved, "ISTIO_") {
		t.Errorf("after Remove, ISTIO_ rules remain:\n%s", saved)
	}
	for _, want := range []string{":KEEP_ME", "-A OUTPUT -p tcp -m tcp --dport 2 -j KEEP_ME"} {
		if !strings.Contains(saved, want) {
			t.Errorf("Remove deleted a foreign rule %q:\n%s", want, saved)
		}
	}
}

// TestOriginalDstNotRedirected checks the error for a connection with no
// conntrack entry (no NAT table in the namespace).
func TestOriginalDstNotRedirected(t *testing.T) {
	requireNetnsTools(t, BackendDefault)
	tp := newTopology(t)
	var ln net.Listener
	if err := netnstest.Do(tp.app, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		_, err = OriginalDst(c.(*net.TCPConn))
		errc <- err
	}()
	if err := netnstest.Do(tp.app, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNoOriginalDst) {
			t.Fatalf("OriginalDst on an untracked connection: %v, want ErrNoOriginalDst", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("listener never accepted")
	}
}
