// Package up runs a whole mesh on one machine from a directory of Istio
// YAML: what `trellis up` does, without root (or, with --netns, as root
// with network namespaces and capture).
//
//	DIR ──► plan (analysis.Load: validate, WorkloadEntries + annotations)
//	         │  any rejected object → InvalidConfigError, nothing started
//	         ▼
//	preflight: every listen address free? else PortInUseError
//	         ▼
//	control plane (discovery.Server, in this process; watches DIR;
//	               with mTLS its CA on CAAddress, root kept in CADir)
//	         ▼  per WorkloadEntry, in name order
//	sidecar  = <trellis> proxy sidecar --ip/--bind-address ADDR
//	           --explicit-proxy ADDR:15080, admin/health/metrics on ADDR
//	           with mTLS: --ca-address --ca-root-cert --trust-domain and
//	           --bootstrap-token CADir/bootstrap/<ns>/<sa>.token (minted)
//	           ready when ADDR:15021/healthz/ready answers 200 (which,
//	           with mTLS, includes holding the workload certificate)
//	           and an inbound listener per service port on ADDR (generated Sidecar)
//	workload = trellis.dev/run annotation (a template; "trellis" = this binary)
//	           ready when it accepts on its private ports on 127.0.0.1
//	         ▼
//	front door: --ingress (127.0.0.1:9080) ─TCP relay─► ADDR:port of the workload
//	            annotated trellis.dev/ingress (its sidecar; Bookinfo: productpage)
//
// Each child runs in its own process group, with Pdeathsig on Linux, its
// output in StateDir/<component>.log. A component that fails to start
// stops everything started before it (StartError names it, its log and
// its last lines). When the context ends, Run stops the front door, the
// workloads, the sidecars (which drain for DrainDuration) and the control
// plane, in that order, and returns nil.
//
// Once ready, Run records the mesh in Config.RunFile (RunInfo: pid, DIR,
// addresses), removed on exit; `trellis apply/delete` find DIR there.
//
// Inbound without capture (sidecar.go): each workload with ports gets a
// generated Sidecar (in an in-memory store the control plane reads after
// DIR) selecting the label trellis.dev/workload=<name> its sidecar
// announces, with an ingress listener per port: bind = the WorkloadEntry
// address, captureMode NONE, defaultEndpoint = 127.0.0.1:<private port>
// (picked free at plan time; {{.AppAddress}} / {{.App PORT}} in the run
// template). Clients' calls to the WorkloadEntry address thus end at the
// server's sidecar, over mutual TLS with Istio's defaults
// (docs/local-mode.md, "mTLS in local mode"). With --mtls=false sidecars
// announce no service account and auto mTLS is off.
//
// Routing and security changes in DIR apply live through the control
// plane's file store. watch (reconcile.go) plans DIR again when a file
// changes: the workloads of WorkloadEntries added are started (their
// generated Sidecar, or namespace and capture, then sidecar and
// workload), those of WorkloadEntries removed stopped and cleaned up; a
// WorkloadEntry whose spec changes keeps its processes (restart up); a
// DIR that no longer validates is reported and changes nothing.
//
// --netns (Config.Netns, root, netns.go, netns_linux.go): a bridge on
// NetnsSubnet, one namespace per WorkloadEntry (eth0 on the bridge),
// `trellis proxy iptables` in each, the sidecar (GID 1337, via ip netns
// exec) and the workload there. WorkloadEntry addresses map to namespace
// addresses through addressOverlay (overlay.go), a view of the directory's
// file store the control plane reads instead of the directory; no
// Sidecars are generated (capture brings inbound calls); the control
// plane listens on the bridge address; the application listens on
// 0.0.0.0 and its service ports. Stopping deletes the namespaces (their
// rules with them), veths and bridge after the processes.
//
// Ownership: Run's goroutine owns the running set; the accessors (PIDs,
// IngressAddr, XDSAddr, StateDir) read under Up.mu. Each child has one
// goroutine waiting on it; the front door one accept goroutine and two
// per relayed connection.
package up
