// Package install builds the objects of a Trellis installation on
// Kubernetes — the output of `trellis manifest generate`, what
// `trellis install` applies, and the Helm chart's content. It is pure:
// Objects(Options) returns the same objects for the same options, and
// talks to no cluster.
//
//	Options ─► Objects ─► CRDs (embedded)               ─► Render (YAML)
//	                      Namespace, ServiceAccount       ─► internal/cli/install (server-side apply)
//	                      ClusterRole(+Binding), Role(+Binding)
//	                      Service istiod, Deployment trellis
//	                      Mutating/ValidatingWebhookConfiguration (internal/kube/webhook)
//	ChartTemplate ─► manifests/charts/trellis/templates/trellis.yaml
//
// CRDs: Istio's (istio.io/api kubernetes/customresourcedefinitions.gen.yaml)
// and the Gateway API's standard channel (sigs.k8s.io/gateway-api
// config/crd/standard) are copied from the module cache, at the versions
// in go.mod, into the Helm chart's crds/ directory by `go generate
// ./internal/install`; the chart package (manifests/charts/trellis)
// embeds that directory, so the binary needs no module cache. One copy
// serves both the chart and the binary; a test fails when it differs from
// the modules (after a go.mod bump: run go generate).
//
// The chart's templates are the same objects rendered with placeholder
// options that the generator replaces by Helm expressions
// ({{ .Release.Namespace }}, {{ .Values.image }}, {{ .Values.replicas }});
// a test checks the checked-in template equals the generator's output and
// that rendering it (text/template, as Helm does) gives exactly what
// Objects gives for the same values.
//
// A revision other than "default" gets objects of its own, named as
// Istio's install names them: <name>-<revision> for the Deployment,
// ServiceAccount and RBAC, Service istiod-<revision>, webhook
// configurations trellis-sidecar-injector-<revision> (only the
// rev.namespace webhook, selecting istio.io/rev=<revision>) and
// trellis-validator-<revision>; its Deployment's arguments name them
// and its own leader Lease, and inject pods with its own Service as their
// control plane. Two revisions can then be installed side by side.
//
// The Service is named istiod, as Istio's sidecars, tools and the injector
// default (istiod.<ns>.svc:15012) expect; its ports use Istio's names. The
// Deployment runs `trellis discovery` in-cluster (no --kubeconfig: the
// Pod's service account; POD_NAMESPACE from the downward API) with the
// flags listed by Args. The webhook configurations come from
// internal/kube/webhook with an empty caBundle: the control plane's
// BundleSyncer fills it, and since install never sets the field, a
// re-apply does not fight it. RBAC rules are listed with their purpose in
// rbac.go.
package install

//go:generate go run ./internal/gen ../../manifests/charts/trellis
