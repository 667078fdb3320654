package capture

import "errors"

// ErrNoOriginalDst is returned by OriginalDst when the kernel has no
// connection-tracking entry for the connection, so it was not redirected.
var ErrNoOriginalDst = errors.New("no original destination: connection not tracked by netfilter")
