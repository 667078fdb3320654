package listener

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestCompileTransparent: transparent compiles (it used to be rejected),
// is reported, and is part of the socket's identity, so that a listener
// changing it gets a new socket at the same address.
func TestCompileTransparent(t *testing.T) {
	msg := func(transparent *wrapperspb.BoolValue, port uint32) *listenerv3.Listener {
		return &listenerv3.Listener{
			Name:           "virtualOutbound",
			Address:        socketAddress("0.0.0.0", port),
			UseOriginalDst: wrapperspb.Bool(true),
			Transparent:    transparent,
			FilterChains:   []*listenerv3.FilterChain{chain("a", nil)},
		}
	}
	for _, port := range []uint32{15001, 0} {
		on := mustCompile(t, msg(wrapperspb.Bool(true), port))
		off := mustCompile(t, msg(wrapperspb.Bool(false), port))
		unset := mustCompile(t, msg(nil, port))
		if !on.Transparent() || off.Transparent() || unset.Transparent() {
			t.Errorf("port %d: Transparent() = %v/%v/%v for true/false/unset", port, on.Transparent(), off.Transparent(), unset.Transparent())
		}
		if !on.socketOptions().Transparent || off.socketOptions().Transparent {
			t.Errorf("port %d: socket options %+v/%+v", port, on.socketOptions(), off.socketOptions())
		}
		keyOn, netOn, addrOn := socketKey(on)
		keyOff, netOff, addrOff := socketKey(off)
		// The same socket serves both: its option is changed in place.
		if keyOn != keyOff || netOn != netOff || addrOn != addrOff {
			t.Errorf("port %d: transparent socket %q %s %s, plain %q %s %s: want the same socket", port, keyOn, netOn, addrOn, keyOff, netOff, addrOff)
		}
	}
}

// TestRestoreOriginalDst: the kernel's original destination wins; without
// one, a transparent socket's local address is the original destination
// (TPROXY) and counts as restored, while a plain socket keeps its local
// address unrestored.
func TestRestoreOriginalDst(t *testing.T) {
	redirected := func(*net.TCPConn) (netip.AddrPort, error) { return ap("10.0.0.9:9000"), nil }
	noEntry := func(*net.TCPConn) (netip.AddrPort, error) {
		return netip.AddrPort{}, errors.New("getsockopt SO_ORIGINAL_DST: no such file or directory")
	}
	tests := []struct {
		name         string
		transparent  bool
		origDst      originalDstFunc
		wantDest     netip.AddrPort
		wantRestored bool
	}{
		{"REDIRECT", false, redirected, ap("10.0.0.9:9000"), true},
		{"not redirected", false, noEntry, ap("127.0.0.1:15001"), false},
		{"TPROXY", true, noEntry, ap("127.0.0.1:15001"), true},
		{"transparent and redirected", true, redirected, ap("10.0.0.9:9000"), true},
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := &connState{raw: c, local: ap("127.0.0.1:15001"), transparent: tc.transparent}
			s.dest = s.local
			restoreOriginalDst(s, tc.origDst)
			if s.dest != tc.wantDest || s.restored != tc.wantRestored {
				t.Errorf("dest %v restored %v, want %v %v", s.dest, s.restored, tc.wantDest, tc.wantRestored)
			}
		})
	}
}

// TestSocketOptionError: a refused transparent option names the option
// and the call, with a hint for EPERM.
func TestSocketOptionError(t *testing.T) {
	err := bindError("virtualOutbound", "0.0.0.0:15001", &net.OpError{Op: "listen", Net: "tcp4",
		Err: &SocketOptionError{Option: "transparent", Call: "setsockopt IP_TRANSPARENT", Err: syscall.EPERM}})
	want := `listener "virtualOutbound": binding 0.0.0.0:15001: transparent: setsockopt IP_TRANSPARENT: operation not permitted (needs CAP_NET_ADMIN)`
	if err.Error() != want {
		t.Errorf("error %q\nwant    %q", err, want)
	}
	if !errors.Is(err, syscall.EPERM) {
		t.Error("the errno is not kept")
	}
	if other := bindError("l", "1.2.3.4:80", errors.New("address already in use")); !strings.HasSuffix(other.Error(), "binding 1.2.3.4:80: address already in use") {
		t.Errorf("other bind error %q", other)
	}
}
