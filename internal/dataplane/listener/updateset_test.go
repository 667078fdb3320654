package listener_test

import (
	"bufio"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// countingSet records which listeners were decoded.
type countingSet struct {
	xdsset.Set
	decoded map[string]int
}

func (c *countingSet) Msg(name string) (proto.Message, error) {
	c.decoded[name]++
	return c.Set.Msg(name)
}

// TestUpdateSetDecodesChangedOnly checks that UpdateSet neither decodes
// nor recompiles a listener whose version is the one in force, and
// replaces the one whose version changed.
func TestUpdateSetDecodesChangedOnly(t *testing.T) {
	b1 := newBackend(t, nil, lineEcho("b1"))
	b2 := newBackend(t, nil, lineEcho("b2"))
	up := &tcp.Direct{Static: map[string][]string{"v1": {b1.addr()}, "v2": {b2.addr()}}}
	e := start(t, listener.Config{}, up, tcpProxyListener(t, "l", "v1"), tcpProxyListener(t, "other", "v1"))
	before := e.m.Listeners()

	// Update built the generations from xdsset.Of versions: a Set of
	// the same content has the same versions.
	set := &countingSet{Set: xdsset.Of(map[string]*listenerv3.Listener{
		"l":     tcpProxyListener(t, "l", "v2"),
		"other": tcpProxyListener(t, "other", "v1"),
	}), decoded: map[string]int{}}
	if err := e.m.UpdateSet(set); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(set.decoded)); !slices.Equal(got, []string{"l"}) {
		t.Errorf("decoded %v, want only the changed l", got)
	}
	after := e.m.Listeners()
	if after["other"] != before["other"] {
		t.Error("unchanged listener was recompiled")
	}
	if after["l"] == before["l"] {
		t.Error("changed listener was not recompiled")
	}
	c := dial(t, "", e.addr(t, "l"))
	if got := lineExchange(t, bufio.NewReader(c), c, "a"); got != "b2:a" {
		t.Errorf("new connection after UpdateSet: %q, want the new chain", got)
	}
}

// TestUpdateSetNameMismatch rejects a resource whose name is not its
// listener's, and changes nothing.
func TestUpdateSetNameMismatch(t *testing.T) {
	b1 := newBackend(t, nil, lineEcho("b1"))
	up := &tcp.Direct{Static: map[string][]string{"v1": {b1.addr()}}}
	e := start(t, listener.Config{}, up, tcpProxyListener(t, "l", "v1"))
	before := e.m.Listeners()
	err := e.m.UpdateSet(xdsset.Of(map[string]*listenerv3.Listener{
		"l":     tcpProxyListener(t, "l", "v1"),
		"alias": tcpProxyListener(t, "x", "v1"),
	}))
	var ue *listener.UpdateError
	if !errors.As(err, &ue) || len(ue.Errors) != 1 ||
		!strings.Contains(ue.Errors["alias"].Error(), `listener "alias": resource name differs from the listener's name "x"`) {
		t.Fatalf("error %v, want the name mismatch of alias", err)
	}
	if got := e.m.Listeners(); !maps.Equal(got, before) {
		t.Errorf("listeners after a rejected update: %v, want %v", got, before)
	}
}
