// Package kubetest starts a real Kubernetes API server for integration
// tests: etcd (Debian's etcd-server) and kube-apiserver (built from the
// k8s.io/kubernetes module by scripts/kube-tools.sh), both on loopback
// ports, with their data and credentials in the test's temporary
// directory.
//
//	Start(t) ─► etcd  (127.0.0.1:<free>, data in t.TempDir)
//	         ─► kube-apiserver (127.0.0.1:<free>, self-signed serving cert,
//	            static admin token in system:masters, RBAC authorizer,
//	            service-account signing key, service CIDR 10.96.0.0/16)
//	         ─► waits for /readyz ─► *Cluster{Config, Client, Kubeconfig}
//
// There is no kube-controller-manager and no kubelet: tests create the
// objects those would (EndpointSlices, Pod status with IPs and Ready,
// ServiceAccounts) themselves. Because no service-account controller
// creates a namespace's "default" ServiceAccount, the ServiceAccount
// admission plugin is disabled; Pods keep the service account they name.
// Namespaces can be created; deleting one leaves it Terminating (the
// namespace controller is what finishes deletions).
//
// InstallCRDs installs Istio's CRDs (istio.io/api's
// kubernetes/customresourcedefinitions.gen.yaml) and the Gateway API's
// standard channel (sigs.k8s.io/gateway-api's config/crd/standard), both
// read from the module cache at the versions in go.mod, and waits until
// they are established.
//
// Binaries: $TRELLIS_KUBE_APISERVER, else
// ${TRELLIS_CACHE:-$HOME/.cache/trellis}/kube-apiserver-<KubeVersion>;
// $TRELLIS_ETCD, else etcd on $PATH. When one is missing the test fails
// (never skips) with the command that provides it.
//
// Standalone does the same outside a test (bench/kubescale): data under a
// given directory, a stop function instead of t.Cleanup, an error instead
// of t.Fatal. Start and Standalone share one implementation through TB.
//
// Both processes run in their own process group with a parent-death
// signal, and are killed (group-wide) when the test ends. A failed test
// gets the tail of both processes' logs.
package kubetest
