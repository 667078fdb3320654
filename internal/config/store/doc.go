// Package store defines the contract every configuration source implements
// (a file directory, the in-memory store, and later Kubernetes CRDs through
// informers) and the pieces those implementations share.
//
//	source ──decode──► Config ──Check(validate)──► state (Index) ──► Get / List
//	                                │                   │
//	                                ▼                   ▼ (under the store's lock)
//	                           Problems()        Dispatcher queue ──► handlers
//	                                                  (store's goroutine, serial, in order)
//
// Store is read-only and watchable; Writer is the optional write side.
// Aggregate merges several stores (files and memory today, files and
// Kubernetes later) with a fixed precedence.
//
// Choices and why:
//
//   - Decode and validate functions are injected (DecodeFunc in package
//     file, ValidateFunc here), so stores do not depend on the decoder or the
//     validators; cmd wires them.
//   - Problem is both the record returned by Problems() and an error: decode
//     and validate functions return Problems (joined with errors.Join) to
//     point at a document and a field, and Writers reject objects with them,
//     so callers use errors.As to branch.
//   - Writer methods take a context and Delete a resourceVersion
//     precondition: a Kubernetes-backed Writer makes API calls and supports
//     optimistic concurrency, and the interface must not change for it.
//   - Handlers registered while objects exist are first sent an add for
//     each (as client-go informers do), so the order of registration and Run
//     does not matter. Dispatcher implements this for every store.
//   - HasSynced means "loaded and the initial events delivered", so a
//     consumer that waits for it and then reads with List sees the same state
//     its handlers were told about.
//   - Stored objects are immutable values shared with readers: List returns
//     a fresh slice of shared values, never a view of internal state.
package store
