package listener_test

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
)

// refusingTransparent is a ListenFunc without CAP_NET_ADMIN: it refuses
// transparent sockets as the kernel does and records the options asked.
type refusingTransparent struct {
	mu    sync.Mutex
	asked []listener.SocketOptions
}

func (r *refusingTransparent) listen(network, address string, opts listener.SocketOptions) (net.Listener, error) {
	r.mu.Lock()
	r.asked = append(r.asked, opts)
	r.mu.Unlock()
	if opts.Transparent {
		return nil, &net.OpError{Op: "listen", Net: network, Err: &listener.SocketOptionError{
			Option: "transparent", Call: "setsockopt IP_TRANSPARENT", Err: syscall.EPERM}}
	}
	return listener.Listen(network, address, opts)
}

// TestTransparentRefused: an update adding a transparent listener the
// kernel refuses is rejected with an error naming the listener and the
// reason, and the listeners in force keep serving.
func TestTransparentRefused(t *testing.T) {
	be := newBackend(t, nil, lineEcho("be"))
	r := &refusingTransparent{}
	a := tcpProxyListener(t, "a", "be")
	e := start(t, listener.Config{Listen: r.listen}, &tcp.Direct{Static: map[string][]string{"be": {be.addr()}}}, a)

	vo := tcpProxyListener(t, "virtualOutbound", "be")
	vo.UseOriginalDst = wrapperspb.Bool(true)
	vo.Transparent = wrapperspb.Bool(true)
	err := e.m.Update([]*listenerv3.Listener{a, vo})
	var ue *listener.UpdateError
	if !errors.As(err, &ue) || len(ue.Errors) != 1 || ue.Errors["virtualOutbound"] == nil {
		t.Fatalf("Update: %v, want an UpdateError for virtualOutbound alone", err)
	}
	want := `listener "virtualOutbound": binding 127.0.0.1:0: transparent: setsockopt IP_TRANSPARENT: operation not permitted (needs CAP_NET_ADMIN)`
	if got := ue.Errors["virtualOutbound"].Error(); got != want {
		t.Errorf("error %q\nwant  %q", got, want)
	}
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("error %v does not wrap EPERM", err)
	}
	r.mu.Lock()
	asked := append([]listener.SocketOptions(nil), r.asked...)
	r.mu.Unlock()
	if len(asked) != 2 || asked[0].Transparent || !asked[1].Transparent {
		t.Errorf("Listen was asked for %+v, want a plain socket, then a transparent one", asked)
	}
	if _, ok := e.m.Listeners()["virtualOutbound"]; ok {
		t.Error("the rejected listener is in force")
	}
	c := dial(t, "", e.addr(t, "a"))
	if got := lineExchange(t, bufio.NewReader(c), c, "ping"); got != "be:ping" {
		t.Errorf("listener a after the rejected update: %q", got)
	}
}
