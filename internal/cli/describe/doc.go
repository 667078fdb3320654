// Package describe implements `trellis describe service|workload NAME`:
// which routes, policies and mTLS settings apply to a service or a
// workload, and why.
//
//	--dir DIR, else the run file of `trellis up` (its watched directory)
//	   └─► analysis.Load (the file store's decoder and validator, the
//	       ServiceEntry registry) ─► snapshot + analysis.Analyze messages
//	           └─► package describe (pure) ─► text or -o json
//	workload only, when the control plane is reachable (--xds-debug-address,
//	default: the run file's monitoring address):
//	   /debug/syncz ─► proxystatus.WriteDetail
//	   /debug/config_dump?proxyID=NAME.NS ─► proxyconfig.Parse ─► listener
//	                                          and route tables
//
// The configuration is read from the directory, not from the control
// plane: a running mesh serves the same objects once its file watch has
// picked them up (within a second). Kubernetes mode is not done yet.
package describe
