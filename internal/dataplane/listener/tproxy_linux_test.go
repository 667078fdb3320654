package listener_test

// A real TPROXY capture in a fresh network namespace (root only):
//
//	netns: lo up, veth tp0 10.77.0.1/24 (peer tp1), route 10.88.0.0/16 dev tp0
//	  mangle OUTPUT:     -d 10.88.0.0/16 → MARK 1337
//	  rule fwmark 1337 → table 133: local 0.0.0.0/0 dev lo   (back in through lo)
//	  mangle PREROUTING: -i lo, mark 1337, SYN → TPROXY 127.0.0.1:15001
//
//	client ── 10.88.1.2:8080 ──► virtualOutbound 127.0.0.1:15001 (transparent,
//	   use_original_dst; local address 10.88.1.2:8080, no conntrack entry)
//	   └─► hand-off to 10.88.1.2_8080 (bind_to_port false) ─► tcp_proxy ─► backend
//
// The manager's sockets are created in the namespace through Config.Listen;
// its handlers dial the backends from the test's own namespace.

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
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/capture"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/testing/netnstest"
)

// requireNetns fails (it never skips: a test that does not run must not
// look green) unless the process is root and ip and iptables are
// installed, saying what is missing, as test/framework.RequireNetns does
// for the end-to-end tests (not called: test/framework links the control
// plane and the Kubernetes clients into this package's test binary).
func requireNetns(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (CAP_NET_ADMIN and CAP_SYS_ADMIN, to create a network namespace and veths, run iptables and bind transparent sockets): run go test as root")
	}
	for _, tp := range [][2]string{{"ip", "iproute2"}, {"iptables", "iptables"}} {
		if _, err := exec.LookPath(tp[0]); err != nil {
			missing = append(missing, fmt.Sprintf("%s in PATH (%v; apt-get install %s)", tp[0], err, tp[1]))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("this test needs real network namespaces; missing: %s", strings.Join(missing, "; "))
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// tproxyNetns creates the namespace of the diagram above, with TPROXY to
// 127.0.0.1:port, and deletes it at the end of the test.
func tproxyNetns(t *testing.T, port int) string {
	t.Helper()
	var tok [3]byte
	_, _ = rand.Read(tok[:])
	ns := "trellis-lst-" + hex.EncodeToString(tok[:])
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, c := range [][]string{
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "link", "add", "tp0", "type", "veth", "peer", "name", "tp1"},
		{"ip", "-n", ns, "link", "set", "tp0", "up"},
		{"ip", "-n", ns, "link", "set", "tp1", "up"},
		{"ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", "tp0"},
		{"ip", "-n", ns, "route", "add", "10.88.0.0/16", "dev", "tp0"},
		{"ip", "-n", ns, "rule", "add", "fwmark", "1337", "lookup", "133"},
		{"ip", "-n", ns, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "133"},
		{"ip", "netns", "exec", ns, "iptables", "-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "-d", "10.88.0.0/16", "-j", "MARK", "--set-mark", "1337"},
		{"ip", "netns", "exec", ns, "iptables", "-t", "mangle", "-A", "PREROUTING", "-i", "lo", "-p", "tcp", "-m", "mark", "--mark", "1337",
			"--tcp-flags", "FIN,SYN,RST,ACK", "SYN", "-j", "TPROXY", "--on-port", fmt.Sprint(port), "--on-ip", "127.0.0.1", "--tproxy-mark", "1337"},
	} {
		run(t, c[0], c[1:]...)
	}
	return ns
}

// netnsListen is a ListenFunc creating sockets in namespace ns; it keeps
// them so the test can read their options.
type netnsListen struct {
	ns    string
	mu    sync.Mutex
	lns   map[string]net.Listener // by address, the last one
	binds map[string]int          // by address
}

func (n *netnsListen) listen(network, address string, opts listener.SocketOptions) (ln net.Listener, err error) {
	err = netnstest.Do(n.ns, func() error {
		ln, err = listener.Listen(network, address, opts)
		return err
	})
	if err == nil {
		n.mu.Lock()
		n.lns[address] = ln
		if n.binds == nil {
			n.binds = map[string]int{}
		}
		n.binds[address]++
		n.mu.Unlock()
	}
	return ln, err
}

// transparentOpt reads IP_TRANSPARENT from the socket last bound at address.
func (n *netnsListen) transparentOpt(t *testing.T, address string) bool {
	t.Helper()
	n.mu.Lock()
	ln := n.lns[address]
	n.mu.Unlock()
	if ln == nil {
		t.Fatalf("no socket was bound at %s", address)
	}
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt IP_TRANSPARENT: %v", gerr)
	}
	return v == 1
}

// dialIn connects from inside ns and returns the connection, or the error.
func dialIn(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := netnstest.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	})
	return c, err
}

func tproxyListeners(t *testing.T, transparent bool) []*listenerv3.Listener {
	vo := tcpProxyListener(t, "virtualOutbound", "passthrough")
	vo.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001},
	}}}
	vo.UseOriginalDst = wrapperspb.Bool(true)
	vo.Transparent = wrapperspb.Bool(transparent)
	svc := tcpProxyListener(t, "10.88.1.2_8080", "svc")
	svc.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "10.88.1.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
	}}}
	svc.BindToPort = wrapperspb.Bool(false)
	return []*listenerv3.Listener{vo, svc}
}

// TestTPROXYHandoff runs a transparent use_original_dst listener under a
// real TPROXY rule: connections captured without NAT are handed to the
// listener of their original destination (the accepted socket's local
// address), others go to the capturing listener's own chain with their
// destination restored. The same listener made non-transparent keeps its
// socket with IP_TRANSPARENT cleared in place, to which TPROXY delivers
// nothing; made transparent again, capture works again — all on the one
// socket bound at the start.
func TestTPROXYHandoff(t *testing.T) {
	requireNetns(t)
	ns := tproxyNetns(t, 15001)
	nl := &netnsListen{ns: ns, lns: map[string]net.Listener{}}
	svc := newBackend(t, nil, lineEcho("svc"))
	passthrough := newBackend(t, nil, lineEcho("passthrough"))
	// The real original_dst: it has nothing for TPROXY'd connections.
	e := start(t, listener.Config{Listen: nl.listen, OriginalDst: capture.OriginalDst},
		&tcp.Direct{Static: map[string][]string{"svc": {svc.addr()}, "passthrough": {passthrough.addr()}}},
		tproxyListeners(t, true)...)
	if !nl.transparentOpt(t, "127.0.0.1:15001") {
		t.Fatal("virtualOutbound's socket has no IP_TRANSPARENT")
	}

	exchange := func(addr, want, wantListener string) {
		t.Helper()
		c, err := dialIn(ns, addr, waitFor)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		if got := lineExchange(t, bufio.NewReader(c), c, "ping"); got != want {
			t.Errorf("%s: answer %q, want %q", addr, got, want)
		}
		c.Close()
		s := e.sessions.next(t)
		d := s.Downstream
		dst := netip.MustParseAddrPort(addr)
		if d.Listener != wantListener || d.Destination != dst || d.Local != dst || !d.Restored {
			t.Errorf("%s: listener %q destination %v local %v restored %v; want %q, %v, %v, restored",
				addr, d.Listener, d.Destination, d.Local, d.Restored, wantListener, dst, dst)
		}
	}
	exchange("10.88.1.2:8080", "svc:ping", "10.88.1.2_8080")
	exchange("10.88.1.3:9090", "passthrough:ping", "virtualOutbound")

	// Not transparent: the option is cleared on the same socket.
	if err := e.m.Update(tproxyListeners(t, false)); err != nil {
		t.Fatalf("Update to non-transparent: %v", err)
	}
	if nl.transparentOpt(t, "127.0.0.1:15001") {
		t.Fatal("virtualOutbound's socket kept IP_TRANSPARENT after transparent was turned off")
	}
	if l := e.m.Listeners()["virtualOutbound"]; l == nil || l.Transparent() {
		t.Fatal("virtualOutbound in force is still transparent")
	}
	if c, err := dialIn(ns, "10.88.1.2:8080", time.Second); err == nil {
		c.Close()
		t.Fatal("a TPROXY'd connection reached a socket without IP_TRANSPARENT")
	} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("dial without IP_TRANSPARENT: %v, want a timeout (SYN dropped)", err)
	}
	// Plain connections to the address still reach it.
	c, err := dialIn(ns, "127.0.0.1:15001", waitFor)
	if err != nil {
		t.Fatalf("dial 127.0.0.1:15001 after the change: %v", err)
	}
	if got := lineExchange(t, bufio.NewReader(c), c, "ping"); got != "passthrough:ping" {
		t.Errorf("plain connection: %q", got)
	}
	c.Close()
	if s := e.sessions.next(t); s.Downstream.Restored {
		t.Errorf("plain connection on a non-transparent socket restored %v", s.Downstream.Destination)
	}

	// Transparent again.
	if err := e.m.Update(tproxyListeners(t, true)); err != nil {
		t.Fatalf("Update back to transparent: %v", err)
	}
	if !nl.transparentOpt(t, "127.0.0.1:15001") {
		t.Fatal("virtualOutbound's socket has no IP_TRANSPARENT after transparent was turned back on")
	}
	exchange("10.88.1.2:8080", "svc:ping", "10.88.1.2_8080")
	nl.mu.Lock()
	binds := nl.binds["127.0.0.1:15001"]
	nl.mu.Unlock()
	if binds != 1 {
		t.Errorf("127.0.0.1:15001 was bound %d times, want once (options changed in place)", binds)
	}
}
