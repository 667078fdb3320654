package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/trellismesh/trellis/bench/internal/benchmesh"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
)

// trellisPair is the Trellis sidecar pair, measured as Istio's benchmark
// does, with real traffic capture (see netns.go for the topology):
//
//	fortio (client netns, root) ─ connects to 10.89.X.11:8080, Host echo.default.svc.cluster.local:8080
//	  ─(OUTPUT nat → 15001)→ sidecar A (client netns, GID 1337, GOMAXPROCS=1)
//	  ─(plain HTTP/1.1 over the bridge)→ server netns ─(PREROUTING nat → 15006)→ sidecar B (GID 1337, GOMAXPROCS=1)
//	  ─(from 127.0.0.6)→ echo server 0.0.0.0:8080
//
// Both sidecars are `trellis-proxy sidecar` processes (the slim binary
// that images run; -trellis-proxy - runs `trellis proxy sidecar` instead),
// configured by `trellis discovery` running in the root namespace on the
// bridge address from a config directory with a ServiceEntry for the echo
// service (HTTP, port 8080) and WorkloadEntries for the server and the
// client, plus -services N-1 more services. Each run installs `iptables`
// capture in both namespaces, starts the sidecars and waits for their
// readiness; Stop kills them and removes the rules.
//
// "trellis" runs mutual TLS between the sidecars, as a mesh does by
// default and as the nginx pairs do TLS 1.3 between their proxies: the
// control plane runs its CA (bootstrap tokens minted for both service
// accounts), the WorkloadEntries carry service accounts (auto mTLS) and a
// namespace PeerAuthentication is STRICT, so B accepts nothing else.
// "trellis-plaintext" is the same pair without identities: plain HTTP/1.1
// between the sidecars. "trellis-tproxy" is the mTLS pair captured in
// TPROXY mode (`trellis proxy iptables -m TPROXY`, sidecars with
// --interception-mode TPROXY): the mangle table and a policy route instead
// of the nat table, so the namespaces track no connections. Added latency
// is against direct-netns (same path, no proxies); ratios are to
// nginx-netns when it runs.
//
// "trellis-b" and "trellis-tproxy-b" are trellis and trellis-tproxy with
// the sidecar binary of -trellis-proxy-b: two builds measured in the same
// interleaved rounds.
type trellisPair struct{ mtls, tproxy, b bool }

func init() {
	registerPair(trellisPair{mtls: true})
	registerPair(trellisPair{mtls: false})
	registerPair(trellisPair{mtls: true, tproxy: true})
	registerPair(trellisPair{mtls: true, b: true})
	registerPair(trellisPair{mtls: true, tproxy: true, b: true})
}

const (
	echoHost   = "echo.default.svc.cluster.local"
	proxyGID   = 1337 // `trellis proxy iptables` default --proxy-uid/--proxy-gid
	healthPort = 15021
	xdsPort    = 15010
	caPort     = 15012
)

func (p trellisPair) Name() string {
	name := "trellis-plaintext"
	switch {
	case p.tproxy:
		name = "trellis-tproxy"
	case p.mtls:
		name = "trellis"
	}
	if p.b {
		name += "-b"
	}
	return name
}

// captureArgs are the `trellis proxy iptables` arguments of the pair's
// capture mode (for --clean too), and the table and chain whose presence
// shows the rules are in.
func (p trellisPair) captureArgs() (args []string, table, chain string) {
	if p.tproxy {
		return []string{"-m", "TPROXY"}, "mangle", "ISTIO_DIVERT"
	}
	return nil, "nat", "ISTIO_REDIRECT"
}

func (trellisPair) Baseline() string { return "direct-netns" }

func (p trellisPair) Available(e *Env) error {
	if err := netnsAvailable(); err != nil {
		return err
	}
	if p.b {
		if e.TrellisProxyB == "" {
			return fmt.Errorf("pair %s needs -trellis-proxy-b BINARY", p.Name())
		}
		if err := checkExecutable(e.TrellisProxyB, "-trellis-proxy-b"); err != nil {
			return err
		}
	}
	for _, tool := range []string{"iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			return &SkipError{Reason: "needs " + tool + " (apt-get install iptables)"}
		}
	}
	if err := buildOrCheck(&e.Trellis, "-trellis", filepath.Join(e.Dir, "trellis"), "github.com/trellismesh/trellis/cmd/trellis"); err != nil {
		return err
	}
	if e.TrellisProxy == "-" {
		return nil
	}
	return buildOrCheck(&e.TrellisProxy, "-trellis-proxy", filepath.Join(e.Dir, "trellis-proxy"), "github.com/trellismesh/trellis/cmd/trellis-proxy")
}

// buildOrCheck checks that *bin (given with flag) is an executable, or,
// when it is empty, builds pkg into out (cached by the go command after
// the first time) and sets *bin to it.
func buildOrCheck(bin *string, flag, out, pkg string) error {
	if *bin != "" {
		return checkExecutable(*bin, flag)
	}
	// As the images build them (build/Dockerfile.*): static (no libc
	// mapped: ~1.4 MB resident), stripped, without gRPC's request tracing,
	// whose html/template keeps every exported method linked (8 MB).
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s (or pass %s PATH): %v\n%s", pkg, flag, err, b)
	}
	*bin = out
	return nil
}

// checkExecutable checks that bin (given with flag) is an executable file.
func checkExecutable(bin, flag string) error {
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s %s: not an executable", flag, bin)
	}
	return nil
}

// proxyCommand is the sidecars' executable and the arguments before a
// `trellis proxy` subcommand (sidecar, iptables); b selects
// -trellis-proxy-b.
func (e *Env) proxyCommand(b bool) (string, []string) {
	if b {
		return e.TrellisProxyB, nil
	}
	if e.TrellisProxy == "-" || e.TrellisProxy == "" {
		return e.Trellis, []string{"proxy"}
	}
	return e.TrellisProxy, nil
}

func (tp trellisPair) Start(ctx context.Context, e *Env, _ string) (*Instance, error) {
	t, err := e.topology(ctx)
	if err != nil {
		return nil, err
	}
	if err := t.controlPlane(ctx, e, tp.mtls); err != nil {
		return nil, err
	}
	pbin, pargs := e.proxyCommand(tp.b)
	capArgs, capTable, capChain := tp.captureArgs()
	mode := "REDIRECT"
	if tp.tproxy {
		mode = "TPROXY"
	}
	var procs []*proc
	var captured []string
	stop := func() {
		for _, p := range procs {
			p.stop()
		}
		for _, ns := range captured {
			clean := slices.Concat(pargs, []string{"iptables", "--clean"}, capArgs)
			if out, err := nsRun(ns, pbin, clean...); err != nil {
				fmt.Fprintf(os.Stderr, "proxybench: removing capture rules in %s: %v\n%s", ns, err, out)
			}
		}
		procs, captured = nil, nil
	}
	fail := func(err error) (*Instance, error) {
		stop()
		return nil, err
	}
	type side struct {
		role, pod, labels string
		ns                netns
	}
	sides := []side{
		{"A", "client", "app=client,version=v1", t.client},
		{"B", "echo", "app=echo,version=v1", t.server},
	}
	identity := func(sa string) ([]string, error) {
		if !tp.mtls {
			return nil, nil
		}
		_, tokenFile, err := bootstrap.Mint(filepath.Join(t.caDir, "bootstrap"), "default", sa)
		if err != nil {
			return nil, fmt.Errorf("bootstrap token for %s: %w", sa, err)
		}
		return []string{"--service-account", sa,
			"--ca-address", netip.AddrPortFrom(t.gw, caPort).String(),
			"--ca-root-cert", filepath.Join(t.caDir, "root-cert.pem"),
			// The CA's serving certificate names istiod's service, not the
			// bridge address the sidecars dial.
			"--ca-server-name", "istiod.istio-system.svc",
			"--bootstrap-token", tokenFile}, nil
	}
	var pids []int
	for _, s := range sides {
		captured = append(captured, s.ns.name)
		out, err := nsRun(s.ns.name, pbin, slices.Concat(pargs, []string{"iptables"}, capArgs)...)
		if err != nil {
			return fail(err)
		}
		rules, err := nsRun(s.ns.name, "iptables-save", "-t", capTable)
		if err != nil {
			return fail(err)
		}
		if !strings.Contains(rules, capChain) || !strings.Contains(rules, "--gid-owner 1337") {
			return fail(fmt.Errorf("%s: capture rules not installed:\n%s\n%s", s.ns.name, out, rules))
		}
		name := fmt.Sprintf("trellis-%s-%d", s.role, e.next())
		idArgs, err := identity(s.pod)
		if err != nil {
			return fail(err)
		}
		args := append([]string{"netns", "exec", s.ns.name, pbin}, pargs...)
		args = append(args, "sidecar",
			"--xds-address", t.cpAddr,
			"--ip", s.ns.addr.String(),
			"--pod-name", s.pod,
			"--namespace", "default",
			"--labels", s.labels,
			"--admin-address", "127.0.0.1:15000",
			"--interception-mode", mode,
			"--health-address", fmt.Sprintf(":%d", healthPort))
		args = append(args, idArgs...)
		p, err := startProcCred(ctx, e, name, "ip", args, append([]string{"GOMAXPROCS=1"}, e.SidecarEnv...), false,
			// UID 0 so that `ip netns exec` may enter the namespace, GID 1337 so
			// that the capture rules' --gid-owner exemption covers the sidecar's
			// own connections (as test/e2e/sidecar does).
			&syscall.Credential{Uid: 0, Gid: proxyGID, Groups: []uint32{}})
		if err != nil {
			return fail(err)
		}
		procs = append(procs, p)
		pid, err := realPID(p.pid(), pbin)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		pids = append(pids, pid)
	}
	for i, s := range sides {
		if err := waitReady(ctx, procs[i], netip.AddrPortFrom(s.ns.addr, healthPort).String()); err != nil {
			return fail(err)
		}
		if err := checkGID(pids[i]); err != nil {
			return fail(fmt.Errorf("sidecar %s: %w", s.role, err))
		}
	}
	return &Instance{
		Addr:  t.echoAddr, // the server workload's address: captured by the client netns
		Host:  fmt.Sprintf("%s:%d", echoHost, echoPort),
		Netns: t.client.name,
		Proxies: []Proxy{
			{Name: "A", PID: pids[0], Netns: t.client.name, Admin: "127.0.0.1:15000"},
			{Name: "B", PID: pids[1], Netns: t.server.name, Admin: "127.0.0.1:15000"},
		},
		Stop: stop,
	}, nil
}

// controlPlane starts `trellis discovery` on the bridge address with the
// benchmark's configuration: once per benchmark and variant (mTLS or
// plaintext), restarted when a run needs the other variant. With mTLS it
// runs the CA on caPort with its directory under the benchmark's.
func (t *topology) controlPlane(ctx context.Context, e *Env, mtls bool) error {
	if t.cp != nil && t.cpMTLS == mtls {
		if err := t.cp.exited(); err != nil {
			return fmt.Errorf("control plane: %w", err)
		}
		return nil
	}
	if t.cp != nil {
		t.cp.stop()
		t.cp = nil
	}
	dir := filepath.Join(e.Dir, fmt.Sprintf("trellis-config-%d", e.next()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.yaml"), []byte(t.meshConfig(mtls)), 0o644); err != nil {
		return err
	}
	if e.Services > 1 {
		if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(extraServices(e.Services-1)), 0o644); err != nil {
			return err
		}
	}
	t.cpAddr = netip.AddrPortFrom(t.gw, xdsPort).String()
	args := []string{"discovery", "--config-dir", dir, "--xds-address", t.cpAddr, "--monitoring-address", "-"}
	if mtls {
		t.caDir = filepath.Join(e.Dir, "trellis-ca")
		args = append(args, "--secure-grpc-address", netip.AddrPortFrom(t.gw, caPort).String(), "--ca-dir", t.caDir)
	} else {
		args = append(args, "--secure-grpc-address", "-")
	}
	p, err := startProc(ctx, e, "trellis-discovery", e.Trellis, args, nil, false)
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, p, t.cpAddr); err != nil {
		p.stop()
		return fmt.Errorf("control plane: %w", err)
	}
	if mtls {
		if err := waitTCP(ctx, p, netip.AddrPortFrom(t.gw, caPort).String()); err != nil {
			p.stop()
			return fmt.Errorf("control plane CA: %w", err)
		}
	}
	t.cp, t.cpMTLS = p, mtls
	return nil
}

// meshConfig is the control plane's configuration: the echo service (HTTP)
// selecting the server workload, and the client workload; with mTLS, the
// workloads have service accounts and the namespace is STRICT.
func (t *topology) meshConfig(mtls bool) string {
	echoSA, clientSA, strict := "", "", ""
	if mtls {
		echoSA, clientSA = "\n  serviceAccount: echo", "\n  serviceAccount: client"
		strict = `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: STRICT
`
	}
	return fmt.Sprintf(`# generated by bench/proxybench
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
  namespace: default
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  ports:
  - number: %d
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: echo
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo
  namespace: default
spec:
  address: %s%s
  labels:
    app: echo
    version: v1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: client
  namespace: default
spec:
  address: %s%s
  labels:
    app: client
    version: v1
%s`, echoHost, echoPort, t.server.addr, echoSA, t.client.addr, clientSA, strict)
}

// extraServices is n more mesh services for -services, in namespace
// "bench" (visible to every sidecar: no Sidecar resource narrows it): each
// an HTTP ServiceEntry on port 8080 selecting five WorkloadEntries (10.1.0.0
// onwards, outside the topology; nothing is sent to them), the shape of
// bench/xdsload's. Both sidecars get their clusters, endpoints and virtual
// hosts in route configuration "8080".
func extraServices(n int) string { return benchmesh.Services(n, 5) }

// waitReady polls a sidecar's readiness endpoint (15021, never captured) from
// the root namespace, up to 30 s.
func waitReady(ctx context.Context, p *proc, addr string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for {
		if err := p.exited(); err != nil {
			return fmt.Errorf("%w (see %s.log)", err, p.name)
		}
		resp, err := c.Get("http://" + addr + "/healthz/ready")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s: %v (see %s.log)", p.name, last, p.name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkGID verifies the sidecar runs with real and filesystem GID 1337.
func checkGID(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "Gid:" {
			if f[1] != "1337" || f[4] != "1337" {
				return fmt.Errorf("%s (want real and fs GID 1337)", strings.TrimSpace(line))
			}
			return nil
		}
	}
	return fmt.Errorf("no Gid line in /proc/%d/status", pid)
}
