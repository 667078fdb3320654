package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// A Pair is one way of putting two proxies between the load generator and
// the echo server: client → proxy A (plain HTTP/1.1) → TLS 1.3 → proxy B →
// plain HTTP/1.1 → server. `direct` is the same path without proxies.
//
// A new pair is one file that calls registerPair from an init function (see
// trellis.go).
type Pair interface {
	Name() string
	// Available says whether the pair can run here. A *SkipError makes the
	// harness skip the pair with its message; any other error stops the
	// benchmark before the first run.
	Available(e *Env) error
	// Start starts both proxies in front of upstream (host:port of the echo
	// server) and returns once they accept connections. The harness then
	// checks the whole chain with a request before measuring.
	Start(ctx context.Context, e *Env, upstream string) (*Instance, error)
}

// Instance is a running pair.
type Instance struct {
	// Addr is the client-facing host:port (proxy A, or the server for direct).
	Addr string
	// Proxies are the processes to measure, in path order (A, then B). The
	// harness measures each PID together with its descendants (an nginx
	// master and its worker), so a proxy that forks needs no extra work.
	Proxies []Proxy
	// Stop ends every process the pair started (it is also called after a
	// failed or interrupted run). It must be safe to call more than once.
	Stop func()
	// Netns, if set, is the network namespace the client (chain check and
	// fortio load) must run in: the harness re-executes itself there
	// (`ip netns exec <Netns> proxybench _load`), so that the namespace's
	// capture rules apply to the client's connections.
	Netns string
	// Host, if set, is the Host header the client sends (a mesh service name
	// while Addr is a workload address).
	Host string
}

// A baseliner is a pair whose added latency is measured against another
// reference than `direct` (the netns pairs: `direct-netns`). The harness adds
// the baseline to the pair list if it is missing.
type baseliner interface {
	Baseline() string
}

// baselineOf is the reference pair of name ("" for the references
// themselves).
func baselineOf(name string) string {
	if strings.HasPrefix(name, "direct") {
		return ""
	}
	if p, ok := pairs[name]; ok {
		if b, ok := p.(baseliner); ok {
			return b.Baseline()
		}
	}
	return "direct"
}

// Proxy is one measured proxy process.
type Proxy struct {
	Name string
	PID  int
	// Netns and Admin, if set, locate the proxy's pprof endpoints
	// (http://Admin/debug/pprof/..., reached inside Netns) for -profile.
	Netns string
	Admin string
}

// SkipError marks a pair that cannot run yet or here; the benchmark goes on
// without it.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return e.Reason }

func isSkip(err error) (string, bool) {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason, true
	}
	return "", false
}

var pairs = map[string]Pair{}

// registerPair makes a pair selectable with -pairs.
func registerPair(p Pair) {
	if _, dup := pairs[p.Name()]; dup {
		panic("proxybench: pair registered twice: " + p.Name())
	}
	pairs[p.Name()] = p
}

func lookupPair(name string) (Pair, error) {
	p, ok := pairs[name]
	if !ok {
		var names []string
		for n := range pairs {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown pair %q (have %v)", name, names)
	}
	return p, nil
}
