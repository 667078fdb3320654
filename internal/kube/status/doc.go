// Package status writes the analysis of the cluster's Istio objects back
// to them, as istiod does with analysis enabled: each object's
// status.validationMessages lists the messages about it (type code and
// name, level, documentation URL), and becomes empty again once the
// object is fixed.
//
//	Config.Messages() ──► desired: (kind, ns/name) ─► []entry (sorted, deduplicated)
//	 (analysis.Analyze over                 │
//	  the snapshot and the                  ▼ compare, per object in the informer caches
//	  store's problems)      cached status.validationMessages ─► changed? ─► rate limiter ─► merge patch
//	                                                                                       (status subresource)
//
// The Writer runs only on the leader (package leader): discovery starts it
// inside the leader's lead function, so a replica that does not lead
// writes nothing, and a new leader starts with a full comparison.
//
// Writes are minimal. Each pass (every Config.Interval) compares every
// cached Istio object's status with the messages it should carry and
// patches only those that differ; a pass coalesces all the changes of its
// interval. A JSON merge patch on the status subresource replaces only
// validationMessages, so conditions and other fields written by others are
// kept. Writes go through a token bucket (Config.QPS, Config.Burst). An
// object just written is not written again until the cache has seen a
// newer version of it, so a slow watch does not cause repeated writes; a
// failed write is retried at the next pass.
//
// Only messages whose origin is the cluster (Origin.File is
// configsource.SourceName) are written: an object read from a file has no
// status to carry them. Messages carry no text in Istio's format (the
// text is on the dashboard, in `trellis analyze` and in the logs).
// Trellis's own TRL codes have no istio.io page, so their
// documentationUrl is left empty. Istio's Reconciled condition (config
// distribution tracking) is not written: Trellis does not track which
// proxies have acknowledged which object. Gateway API objects, whose
// status is of another form, are not written to.
package status
