// Package benchmesh generates the synthetic mesh configuration the
// benchmarks load into the control plane: N HTTP services in namespace
// "bench", each a ServiceEntry on port 8080 selecting its WorkloadEntries
// (addresses from 10.1.0.0 on, outside any test topology, so nothing is
// ever sent to them). bench/xdsload and bench/proxybench -services use the
// same shape, so their figures describe the same configuration.
package benchmesh
