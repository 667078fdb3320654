package up

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// watchInterval is how often watch looks for exited children and changed
// files.
const watchInterval = 300 * time.Millisecond

// watch runs until ctx ends. It reports children that exit on their own
// and, when a file of the directory changes, plans it again: the
// workloads of WorkloadEntries added are started (namespace and capture
// with --netns, generated Sidecar without), those of WorkloadEntries
// removed stopped. A directory that no longer validates, or a workload
// that fails to start, is reported and the rest keeps running (a failed
// one is tried again at the next change). WorkloadEntries whose spec or
// annotations change keep their running processes.
func (r *running) watch(ctx context.Context, ws []Workload) {
	current := make(map[string]Workload, len(ws))
	for _, w := range ws {
		current[w.ID()] = w
	}
	reported := map[*process]bool{}
	last := fingerprint(r.up.cfg.Dir)
	var lastProblem string
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, p := range append(append([]*process(nil), r.sidecars...), r.workloads...) {
			if p.exited() && !reported[p] && !r.removed[p] {
				reported[p] = true
				fmt.Fprintf(r.up.out, "warning: %s exited (%v); the rest keeps running. log: %s\n    %s\n",
					p.name, p.err, p.log, strings.ReplaceAll(tail(p.log, 10), "\n", "\n    "))
			}
		}
		fp := fingerprint(r.up.cfg.Dir)
		if fp == last {
			continue
		}
		last = fp
		if problem := r.reconcile(ctx, current); problem != "" && problem != lastProblem {
			fmt.Fprintf(r.up.out, "warning: %s\n", problem)
			lastProblem = problem
		} else if problem == "" {
			lastProblem = ""
		}
	}
}

// reconcile starts and stops workloads so that current matches the
// directory. It returns why the directory could not be planned ("" when
// it was).
func (r *running) reconcile(ctx context.Context, current map[string]Workload) string {
	cfg := r.up.cfg
	ws, snap, err := plan(ctx, cfg.Dir, cfg.Ports.ExplicitProxy, freePort)
	if err != nil {
		return fmt.Sprintf("%v\n  running workloads are unchanged until the directory is fixed", err)
	}
	if r.alloc != nil {
		if err := netnsAddresses(ws, r.alloc, cfg.Ports.ExplicitProxy, r.net); err != nil {
			return err.Error()
		}
	}
	want := make(map[string]bool, len(ws))
	for _, w := range ws {
		want[w.ID()] = true
	}
	ids := make([]string, 0, len(current))
	for id := range current {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !want[id] {
			r.removeWorkload(ctx, current[id])
			delete(current, id)
			r.up.progress("workload "+id, "stopped (its WorkloadEntry was removed)")
		}
	}
	for _, w := range ws {
		if _, ok := current[w.ID()]; ok || ctx.Err() != nil {
			continue
		}
		r.up.progress("workload "+w.ID(), "added: starting its sidecar and workload")
		if err := r.addWorkload(ctx, snap, w); err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(r.up.out, "warning: WorkloadEntry %s added but not started (tried again when the directory changes): %v\n", w.ID(), err)
			}
			r.removeWorkload(ctx, w)
			continue
		}
		current[w.ID()] = w
	}
	return ""
}

// addWorkload starts a workload added while running: with --netns its
// namespace and capture, without its generated Sidecar (after checking
// its addresses are free); then its sidecar and application.
func (r *running) addWorkload(ctx context.Context, snap *model.Snapshot, w Workload) error {
	if w.Netns != "" {
		if err := r.capture(ctx, w); err != nil {
			return err
		}
		return r.workload(ctx, w)
	}
	if err := r.up.addrsFree(w); err != nil {
		return err
	}
	scs, err := inboundSidecars(snap, []Workload{w})
	if err != nil {
		return err
	}
	for _, c := range scs {
		if _, err := r.generated.Create(ctx, c); err != nil {
			return fmt.Errorf("generated Sidecar %s/%s: %w", c.Namespace, c.Name, err)
		}
	}
	return r.workload(ctx, w)
}

// removeWorkload stops a workload's processes (the application, then its
// sidecar, which drains) and removes what up made for it: its generated
// Sidecar or, with --netns, its namespace.
func (r *running) removeWorkload(ctx context.Context, w Workload) {
	ps := r.members[w.ID()]
	delete(r.members, w.ID())
	for _, p := range ps {
		r.removed[p] = true
	}
	for i := len(ps) - 1; i >= 0; i-- {
		if err := ps[i].stop(r.up.cfg.DrainDuration + 5*time.Second); err != nil {
			fmt.Fprintf(r.up.out, "%s exited with %v (log: %s)\n", ps[i].name, err, ps[i].log)
		}
	}
	if w.Netns != "" && r.net != nil {
		if err := r.net.removeNamespace(w.Netns); err != nil {
			fmt.Fprintf(r.up.out, "warning: %v\n", err)
		}
	}
	if w.Netns == "" && r.generated != nil {
		name := sidecarPrefix + w.Name
		if _, ok := r.generated.Get(schema.Sidecar, w.Namespace, name); ok {
			if err := r.generated.Delete(ctx, schema.Sidecar, w.Namespace, name, ""); err != nil {
				fmt.Fprintf(r.up.out, "warning: deleting the generated Sidecar %s/%s: %v\n", w.Namespace, name, err)
			}
		}
	}
}

// workloadAddrs are the addresses a workload's sidecar listens on without
// --netns, each with what it is.
func (u *Up) workloadAddrs(w Workload) map[string]string {
	cfg := u.cfg
	out := map[string]string{}
	for _, p := range []uint16{cfg.Ports.Admin, cfg.Ports.Health, cfg.Ports.Metrics, cfg.Ports.ExplicitProxy, outboundCapturePort, inboundCapturePort} {
		out[netip.AddrPortFrom(w.Address, p).String()] = "the sidecar of " + w.ID()
	}
	for _, p := range w.Ports {
		out[netip.AddrPortFrom(w.Address, uint16(p)).String()] = "the inbound listener of the sidecar of " + w.ID()
	}
	return out
}

// addrsFree is nil when every address of a workload is free.
func (u *Up) addrsFree(w Workload) error {
	addrs := u.workloadAddrs(w)
	keys := make([]string, 0, len(addrs))
	for a := range addrs {
		keys = append(keys, a)
	}
	sort.Strings(keys)
	for _, a := range keys {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return &PortInUseError{Address: a, What: addrs[a], Err: err,
				Fix: fmt.Sprintf("stop what uses it or give WorkloadEntry %s another spec.address in %s", w.ID(), w.Source.File)}
		}
		ln.Close()
	}
	return nil
}

// fingerprint summarises the directory's files (names, sizes, times):
// it changes when a file is written, added, renamed or removed.
func fingerprint(dir string) string {
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %d %d\n", path, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return b.String()
}
