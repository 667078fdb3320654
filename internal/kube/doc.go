// Package kube is Trellis's only door to a Kubernetes API server: the one
// package (with its subpackages) that imports client-go and the generated
// Istio and Gateway API clients. Everything else works on its typed views.
//
//	rest.Config / kubeconfig ─► New / FromKubeconfig ─► Client{Kube, Istio, GatewayAPI, Dynamic, Extensions}
//	                                                        │
//	                                  NewInformers(client) ─┴─► Informers ─► Collection[T] (List, Get, ByIndex, AddHandler)
//	                                  (transform: Strip)         Istio() / GatewayAPI() factories for the CRD source
//
// Informers cache only what Trellis reads (Strip): every object loses
// managedFields and the kubectl last-applied annotation; Pods keep their
// metadata, service account, node, host-network flag, IPs, phase and Ready
// condition; Nodes keep metadata and addresses. Memory then grows with the
// mesh's needs, not with the size of users' manifests.
//
// Subpackages: kubefake builds a Client over client-go's fake clientsets
// for unit tests; kubetest starts a real etcd and kube-apiserver for
// integration tests (see docs/kubernetes.md).
//
// Subpackage configsource is the store.Store of the cluster's Istio and
// Gateway API objects; subpackage status writes the analysis of those
// objects back into their status.validationMessages (on the leader).
//
// client-go logs through klog; cmd routes it to the process's slog logger
// once with RouteKlog. InCluster and InPod serve a control plane running in
// a Pod without a kubeconfig.
package kube
