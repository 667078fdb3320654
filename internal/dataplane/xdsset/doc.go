// Package xdsset is the hand-off of configuration between the xDS client
// and the proxy's components (cluster manager, listeners, metrics): one
// resource type's complete set as names, versions and messages decoded on
// demand.
//
//	xdsclient (keeps name, version, serialized body per resource)
//	   └─ Set: Names, Version(name), Msg(name) ─► component
//	                                               same name and version as
//	                                               what it compiled: kept,
//	                                               Msg not called
//	                                               otherwise: Msg, compile,
//	                                               keep the compiled form
//
// A Set carries no decoded message beyond the call it is handed to, and a
// component keeps only what it compiled and the version it compiled it
// from, so that a proxy with a large configuration holds each resource
// once, serialized, instead of once decoded per component. The contract is
// xDS's: the same name with the same version is the same content.
//
// Of builds a Set from messages a caller already holds (a synthesized
// listener, tests): each version is a hash of the message's deterministic
// serialization, so equal messages have equal versions.
package xdsset
