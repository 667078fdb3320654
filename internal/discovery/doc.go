// Package discovery assembles the control plane that `trellis discovery`
// runs: configuration stores, the service registry, the snapshot builder, the
// xDS generators and the ADS server, plus the monitoring endpoint.
//
//	file dir ──► file store ─┐
//	memory  ──► memory store ┴► aggregate store ──► serviceentry registry
//	                                  │                    │
//	                                  └──── changes ───────┘
//	                                           ▼
//	                          snapshot loop (builds model.Snapshot)
//	                                           ▼
//	                       xds server (debounce, push) ◄── gen.Generator
//
// The snapshot loop owns change collection: store and registry handlers only
// record what changed and wake it; it builds one immutable snapshot per wake
// and hands it to the xDS server, which debounces and pushes.
package discovery
