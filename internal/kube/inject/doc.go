// Package inject adds the Trellis sidecar to Kubernetes pods, as Istio's
// sidecar injector does: a pure function of the pod and the mesh-wide
// Config, shared by the admission webhook (kube/webhook) and
// `trellis kube-inject` (Manifest).
//
//	namespace labels ─► NamespaceEnabled ─┐
//	pod labels/annotations ───────────────┴─► Required ─► Injector.Pod ─► Patch (JSON Patch for the webhook)
//	                                                         │
//	      options (annotations over Config) ─────────────────┤
//	      rewriteProbes (app probes → :15020/app-health/...) ┤
//	      istio-init + istio-proxy + volumes + status ───────┘
//
// What is added (names as in Istio, so tooling that looks for them works):
//
//   - istio-init: `trellis proxy iptables` with Istio's istio-iptables
//     flags, run as root with NET_ADMIN and NET_RAW only (ALL dropped, no
//     privilege escalation). Not added in interception mode NONE.
//   - istio-proxy: `trellis proxy sidecar` with the control plane's xDS
//     and CA addresses, the pod's identity from the downward API
//     (POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT), its
//     interception mode (ISTIO_META_INTERCEPTION_MODE, always set), its
//     labels and workload name as flags; user and group 1337, read-only
//     root, ALL capabilities dropped; readiness on :15021/healthz/ready; ports
//     15020 (merged metrics, app-health) and 15021. With a CA it mounts a
//     projected service-account token (audience istio-ca) as its bootstrap
//     token and the istio-ca-root-cert ConfigMap as its roots.
//   - Annotations sidecar.istio.io/status (what was added: its presence
//     makes injection a no-op) and prometheus.io/* (when absent); labels
//     security.istio.io/tlsMode=istio and service.istio.io/canonical-name.
//
// Pod annotations read: traffic.sidecar.istio.io/{include,exclude}
// OutboundIPRanges, {include,exclude}InboundPorts, {include,exclude}
// OutboundPorts (iptables -i -x -b -d -q -o; 15090,15021,15020 are always
// excluded inbound); sidecar.istio.io/proxyCPU, proxyMemory,
// proxyCPULimit, proxyMemoryLimit; sidecar.istio.io/proxyImage;
// sidecar.istio.io/rewriteAppHTTPProbers; sidecar.istio.io/nativeSidecar;
// sidecar.istio.io/interceptionMode (REDIRECT, TPROXY, NONE; over
// proxy.istio.io/config's interceptionMode, over Config.InterceptionMode,
// the mesh default: REDIRECT unless set); proxy.istio.io/config
// (holdApplicationUntilProxyStarts, terminationDrainDuration,
// interceptionMode; other ProxyConfig fields are ignored). A
// malformed value is an error naming the annotation: the webhook refuses
// the pod rather than start it outside the mesh.
//
// Interception modes, as in Istio's injection template:
//
//	REDIRECT  istio-init -m REDIRECT (nat table); proxy as above.
//	TPROXY    istio-init -g 1337 -m TPROXY (mangle table, no conntrack;
//	          see dataplane/capture); the proxy opens transparent sockets,
//	          so it gets NET_ADMIN and runs as root in group 1337: added
//	          capabilities reach a non-root process only through the ambient
//	          set, which Kubernetes does not fill, and the capture rules
//	          recognise the proxy's traffic by its group. TPROXY captures
//	          every inbound port, so includeInboundPorts other than "*" is an
//	          error (excludeInboundPorts leaves ports out).
//	NONE      no istio-init and no capture: applications reach the proxy
//	          explicitly; the traffic annotations are checked but unused.
//
// holdApplicationUntilProxyStarts puts the proxy first with a postStart
// hook `trellis proxy wait`, so that the kubelet starts the application
// only once the proxy is ready. A native sidecar (Config.NativeSidecar or
// the annotation) is an init container with restartPolicy Always placed
// right after istio-init, with a startup probe on /healthz/ready: it
// starts before every other init container, the application waits for it,
// and it does not keep Jobs from completing. Kubernetes 1.29 turned native
// sidecars on by default; Trellis leaves the choice to the caller
// (Config.NativeSidecar) rather than probe the cluster here.
//
// Probe rewriting: the HTTP and TCP liveness, readiness and startup probes
// of application containers are pointed at the proxy's
// :15020/app-health/<container>/<livez|readyz|startupz>, and the
// originals (named ports resolved) go to the proxy in
// ISTIO_KUBE_APP_PROBERS; the proxy runs them from inside the pod
// (dataplane/role/sidecar, apphealth.go). gRPC and exec probes are left
// alone.
//
// Required follows Istio: system namespaces, host-network pods and pods
// with a sidecar are never injected; the pod label (or annotation)
// sidecar.istio.io/inject "true"/"false" decides; otherwise the namespace
// does. The package imports API types only, no Kubernetes client.
package inject
