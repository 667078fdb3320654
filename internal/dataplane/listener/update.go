package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// Update replaces the set of listeners, for callers that hold messages:
// as UpdateSet, with versions that are hashes of the listeners' content
// (xdsset.Of), and errors for listeners without a name ("#<index>") or
// with a duplicate one. The manager does not keep the messages.
func (m *Manager) Update(listeners []*listenerv3.Listener) error {
	errs := map[string]error{}
	byName := make(map[string]*listenerv3.Listener, len(listeners))
	for i, l := range listeners {
		name := l.GetName()
		if name == "" {
			errs[fmt.Sprintf("#%d", i)] = fmt.Errorf("listener #%d: name is required", i)
			continue
		}
		if _, dup := byName[name]; dup {
			errs[name] = fmt.Errorf("listener %q: duplicate listener name", name)
			continue
		}
		byName[name] = l
	}
	return m.update(xdsset.Of(byName), errs)
}

// UpdateSet replaces the set of listeners with res (the complete LDS set,
// as the xDS client delivers it). It is all or nothing: if any listener
// fails to compile, has a duplicate address, or cannot bind its socket,
// nothing changes and an *UpdateError names each one. Otherwise listeners
// with the version in force are left alone without being decoded;
// changed ones get a new generation (keeping their socket when the
// address is the same) while their established connections go on with
// the old chains; removed ones stop accepting and drain
// (Config.DrainTimeout). The manager keeps the compiled listeners and
// their versions, not the messages.
func (m *Manager) UpdateSet(res xdsset.Set) error {
	return m.update(res, map[string]error{})
}

// update is UpdateSet with errs found by the caller.
func (m *Manager) update(res xdsset.Set, errs map[string]error) error {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	cur := m.state.Load()
	next := &state{byName: map[string]*generation{}, byAddr: map[netip.AddrPort]*generation{}}
	var fresh []*generation
	for _, name := range res.Names() {
		version := res.Version(name)
		if old := cur.byName[name]; old != nil && xdsset.Unchanged(old.version, version) {
			next.byName[name] = old
			continue
		}
		l, err := listenerMsg(res, name)
		if err != nil {
			errs[name] = err
			continue
		}
		c, err := Compile(l, m.cfg.Filters)
		if err != nil {
			errs[name] = err
			continue
		}
		if m.cfg.Secrets == nil && c.terminatesTLS() {
			errs[name] = fmt.Errorf("listener %q: a filter chain terminates TLS but the proxy has no secret store", name)
			continue
		}
		g := &generation{l: c, version: version, conns: map[*tracked]struct{}{}, drained: make(chan struct{})}
		next.byName[name] = g
		fresh = append(fresh, g)
	}
	names := make([]string, 0, len(next.byName))
	for n := range next.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		indexAddress(next, n, errs)
	}
	// Bind what is new; keep sockets whose address stays in use, with
	// their options changed in place (IP_TRANSPARENT can be set and
	// cleared on a listening socket: no rebinding, no refused connections).
	socks := map[string]*socket{}
	sockOwner := map[string]string{}
	var bound []*socket
	var retune []retuning
	for _, n := range names {
		g := next.byName[n]
		if !g.l.bind || errs[n] != nil || m.stoppedLocked(g.l) {
			continue
		}
		key, network, address := socketKey(g.l)
		if owner, ok := sockOwner[key]; ok {
			errs[n] = fmt.Errorf("listener %q: address %s is bound by listener %q", n, address, owner)
			continue
		}
		opts := g.l.socketOptions()
		s := m.sockets[key]
		if s == nil {
			ln, err := m.cfg.Listen(network, address, opts)
			if err != nil {
				errs[n] = bindError(n, address, err)
				continue
			}
			s = &socket{key: key, ln: ln, opts: opts}
			bound = append(bound, s)
		} else if s.opts != opts {
			retune = append(retune, retuning{name: n, address: address, s: s, opts: opts})
		}
		socks[key], sockOwner[key] = s, n
		if g.sock == nil { // a kept generation already has this socket
			g.sock = s
		}
	}
	if len(errs) == 0 {
		retuneSockets(retune, errs)
	}
	if len(errs) > 0 {
		for _, s := range bound {
			s.ln.Close()
		}
		return &UpdateError{Errors: errs}
	}
	m.commit(cur, next, fresh, socks, bound)
	return nil
}

// listenerMsg decodes listener name of res and checks its name.
func listenerMsg(res xdsset.Set, name string) (*listenerv3.Listener, error) {
	msg, err := res.Msg(name)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", name, err)
	}
	l, ok := msg.(*listenerv3.Listener)
	switch {
	case msg != nil && !ok:
		return nil, fmt.Errorf("listener %q: resource is a %T, not a Listener", name, msg)
	case l == nil:
		return nil, fmt.Errorf("listener %q: nil resource", name)
	case l.GetName() != name:
		return nil, fmt.Errorf("listener %q: resource name differs from the listener's name %q", name, l.GetName())
	}
	return l, nil
}

// indexAddress adds listener n to the hand-off index, recording a
// duplicate address as an error.
func indexAddress(next *state, n string, errs map[string]error) {
	g := next.byName[n]
	a := g.l.addr
	if !a.IsValid() || a.Port() == 0 {
		return
	}
	if other, dup := next.byAddr[a]; dup {
		errs[n] = fmt.Errorf("listener %q: duplicate address %s (listener %q)", n, a, other.l.name)
		return
	}
	next.byAddr[a] = g
	if g.l.ipv4Compat && a.Addr() == netip.IPv6Unspecified() {
		// A dual-stack "::" listener also stands for 0.0.0.0.
		v4 := netip.AddrPortFrom(netip.IPv4Unspecified(), a.Port())
		if _, taken := next.byAddr[v4]; !taken {
			next.byAddr[v4] = g
		}
	}
}

// socketKey identifies a listener's socket: its address, or its name for
// port 0 (each such listener gets its own ephemeral port).
func socketKey(l *Listener) (key, network, address string) {
	network = "tcp4"
	if l.addr.Addr().Is6() {
		network = "tcp6"
		if l.ipv4Compat {
			network = "tcp"
		}
	}
	address = l.addr.String()
	if l.addr.Port() == 0 {
		return "name:" + l.name, network, address
	}
	return "addr:" + address, network, address
}

// socketOptions are the options l's socket is created with.
func (l *Listener) socketOptions() SocketOptions {
	return SocketOptions{Transparent: l.transparent}
}

// bindError reports a listener whose socket could not be bound. A refused
// socket option is named without net's "listen tcp4 <address>" wrapping.
func bindError(name, address string, err error) error {
	var soe *SocketOptionError
	if errors.As(err, &soe) {
		err = soe
	}
	return fmt.Errorf("listener %q: binding %s: %w", name, address, err)
}

// retuning is a kept socket whose options change.
type retuning struct {
	name, address string
	s             *socket
	opts          SocketOptions
}

// retuneSockets applies each socket's new options in place. If one is
// refused, those applied so far are set back, and the error is recorded
// in errs. Called with updateMu held, once the update has no other error.
func retuneSockets(list []retuning, errs map[string]error) {
	for i, r := range list {
		if err := setOptions(r.s.ln, r.opts); err != nil {
			errs[r.name] = bindError(r.name, r.address, err)
			for _, done := range list[:i] {
				// Best effort: the kernel took the old value before.
				_ = setOptions(done.s.ln, done.s.opts)
			}
			return
		}
	}
	for _, r := range list {
		r.s.opts = r.opts
	}
}

// commit installs next: socket owners, the state, retirement of replaced
// generations, and accept loops for new sockets.
func (m *Manager) commit(cur, next *state, fresh []*generation, socks map[string]*socket, bound []*socket) {
	for _, g := range next.byName {
		if g.sock != nil {
			g.sock.owner.Store(g)
		}
	}
	for key, s := range m.sockets {
		if _, keep := socks[key]; !keep {
			s.ln.Close() // its accept loop ends; its connections go on
		}
	}
	m.sockets = socks
	m.state.Store(next)

	m.mu.Lock()
	for _, g := range fresh {
		m.gens[g] = struct{}{}
	}
	var retired, empty []*generation
	for name, g := range cur.byName {
		if next.byName[name] != g {
			retired = append(retired, g)
			if m.retireLocked(g) {
				empty = append(empty, g)
			}
		}
	}
	running := m.running
	drainSel := m.drainSel
	m.mu.Unlock()
	// Connections of replaced and removed listeners are asked to move
	// away (Envoy drains them); new listeners that Drain selected start
	// drained.
	for _, g := range retired {
		g.drain()
	}
	for _, g := range empty {
		g.release()
	}
	if drainSel != nil {
		for _, g := range fresh {
			if drainSel(g.l) {
				g.drain()
			}
		}
	}
	if running {
		for _, s := range bound {
			m.startAccepting(s)
		}
	}
}

// retireLocked marks g replaced: it drains, and is forgotten once empty.
// It reports whether g had no connections left (the caller releases it).
func (m *Manager) retireLocked(g *generation) bool {
	if g.retired {
		return false
	}
	g.retired = true
	if len(g.conns) == 0 {
		g.markDrainedLocked()
		delete(m.gens, g)
		return true
	}
	if d := m.cfg.DrainTimeout; d > 0 {
		m.wg.Add(1)
		go m.drainTimer(g, d)
	}
	return false
}

// drainTimer closes g's remaining connections after d.
func (m *Manager) drainTimer(g *generation, d time.Duration) {
	defer m.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.drained:
		return
	case <-m.quit:
		return // Close kills everything
	}
	m.mu.Lock()
	g.killed = true
	conns := make([]*tracked, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
}
