// Package leader elects one control-plane replica to do the work that
// writes to the cluster (root ConfigMaps, the webhooks' caBundle, the
// status of Istio objects),
// with a coordination.k8s.io Lease and client-go's leaderelection. Every
// replica serves xDS, the CA and the webhooks; only the leader writes.
//
//	Elector.Run(ctx, lead) ── campaign ──► leading: lead(leadCtx) runs
//	       ▲                                  │ Lease lost or ctx done: leadCtx cancelled,
//	       └──────── campaign again ◄─────────┘ lead returns, then (if ctx lives) campaign again
//
// The Lease is released when ctx ends (ReleaseOnCancel), so a replica that
// shuts down hands over at once; one that dies is replaced after
// LeaseDuration. lead must return promptly once its context is cancelled:
// client-go's elector stops renewing only after lead's context ends, and
// Run waits for lead before campaigning again, so two leaders of one
// process never overlap.
package leader
