// Package install implements `trellis manifest generate`, `trellis
// install` and `trellis uninstall`: the objects of internal/install
// printed as YAML, or applied to a cluster with server-side apply (field
// manager "trellis"), or deleted.
//
//	install:   CRDs ─apply─► wait Established ─► namespace, RBAC, Services,
//	           Deployment, webhook configurations ─apply─► wait Deployment
//	           Available (--wait; off where no kubelet runs, as in tests)
//	uninstall: everything but the CRDs (and so the users' Istio objects),
//	           in reverse order; --crds deletes the CRDs too
//
// Apply is idempotent: each object is reported created, configured (its
// resourceVersion changed) or unchanged, and a second install with the
// same options changes nothing. Fields other managers own (the caBundle the
// control plane writes) are left to them.
package install
