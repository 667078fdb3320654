// Package rootcm publishes the mesh's root certificates to the ConfigMap
// istio-ca-root-cert (key root-cert.pem) of every namespace, where injected
// proxies mount them, and keeps it current:
//
//	Namespace informer ─ add ───────────────┐
//	ConfigMap informer ─ update/delete ─────┼─► queue of namespaces ─► reconcile(ns):
//	  (only istio-ca-root-cert)             │     create if missing, overwrite if edited
//	Roots() polled every Interval ─ change ─┘     (all namespaces)
//
// Handlers only enqueue; one worker reconciles, retrying failures with
// back-off. Only the leader should run a Publisher (package leader).
// Namespaces kube-system, kube-public and kube-node-lease are skipped, as
// Istio skips them; so are namespaces being deleted.
package rootcm
