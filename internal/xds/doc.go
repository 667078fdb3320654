// Package xds holds what the xDS generators and the xDS server share: type
// URLs, the Resource value that carries one generated resource, and
// deterministic marshalling. Generation lives in xds/gen/..., transport in
// xds/server.
package xds
