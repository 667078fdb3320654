//go:build race

package sockio

// raceEnabled: under the race detector Conn's Read and Write go through
// the TCPConn. The runtime's poller tells the detector that a write on
// one socket happens before a read of its data on another (tests that
// hand objects over a connection rely on it); raw system calls would
// hide that edge and report races that are not there.
const raceEnabled = true
