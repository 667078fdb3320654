// Package netnstest runs test code inside a named network namespace
// (/run/netns/<name>, as `ip netns add` creates): Enter moves the calling
// goroutine's locked OS thread into it, Do runs a function on a fresh
// thread that has entered it. Sockets created there belong to the
// namespace for their whole life, whichever thread uses them later.
//
// A thread that entered a namespace is never unlocked: it exits with its
// goroutine instead of carrying the namespace back into the scheduler's
// pool, where any goroutine could pick it up. Linux only; root
// (CAP_SYS_ADMIN) is needed to enter a namespace.
package netnstest
