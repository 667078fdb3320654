// Package webhook is the control plane's admission webhook server on
// :15017 (Istio's port): sidecar injection on /inject and configuration
// validation on /validate, over TLS with a certificate Trellis issues and
// renews itself, and the webhook configurations whose caBundle it keeps
// current.
//
//	kube-apiserver ──HTTPS AdmissionReview v1──► Server (:15017)
//	                                               ├─ /inject   Pod CREATE ─► inject.Required/Pod ─► JSON Patch
//	                                               └─ /validate Istio kinds ─► config/decode + config/validation
//	                                                                             (the file source's path)
//	Authority (mesh CA) ─► Certs ─► serving certificate (renewed at half-life or when the roots change)
//	                          └─► CABundle ─► BundleSyncer ─► Mutating/ValidatingWebhookConfiguration.caBundle
//
// /inject trusts the API server's selectors for the namespace decision
// (MutatingConfig encodes inject.NamespaceEnabled as namespace selectors,
// with Istio's webhook names) and applies the pod-level rules itself. A pod
// with malformed injection annotations is refused with the annotation
// named. /validate decodes the object exactly as a file would be decoded
// and refuses it with every field error ("invalid VirtualService ns/name:
// spec.http[0].match[0].uri.regex: invalid RE2 regex: ..."); warnings are
// returned as admission warnings; deletions are allowed.
//
// Requests are bounded: a review body of at most 6 MiB (413 above), JSON
// nesting as encoding/json and config/decode allow (400, or a denial naming
// the depth), a whole request read within Config.ReadTimeout (30 s, the
// API server's longest webhook timeout), 64 KiB of headers.
//
// Both generated configurations use failurePolicy Fail, sideEffects None
// and AdmissionReview v1. The BundleSyncer writes only when a caBundle
// differs; it is the one writer, so only the leader should run it.
package webhook
