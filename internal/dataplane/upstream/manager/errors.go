package manager

import (
	"errors"
	"strings"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// Error is a failed attempt on a cluster. errors.Is matches it against
// the sentinels of its two callers, so each sees the kinds it branches on:
//
//	Kind                   router (http/router)        tcp proxy (tcp)        flag
//	NoCluster              ErrNoCluster                ErrNoCluster           NC
//	NoHealthyUpstream      ErrNoHealthyUpstream        ErrNoHealthyUpstream   UH
//	Overflow               ErrOverflow                 ErrOverflow            UO
//	RetryOverflow          ErrRetryOverflow            -                      -
//	ConnectFailure         ErrConnectFailure           (connect failure)      UF
//	ConnectTimeout         ErrConnectTimeout           (connect failure)      UF
//	RefusedStream          ErrRefusedStream            -                      UR
//	Reset                  ErrReset                    -                      UR
//	ConnectionTermination  ErrConnectionTermination    -                      UC
//	Timeout, Canceled      (the context's cause, which Unwrap returns)        UT, DC
//
// The tcp proxy retries whatever is not one of its three sentinels, up to
// max_connect_attempts.
type Error struct {
	Kind    pool.Kind
	Cluster string
	// Host is the host's address, "" when none was picked.
	Host string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cluster ")
	b.WriteString(e.Cluster)
	b.WriteString(": ")
	b.WriteString(e.Kind.String())
	if e.Host != "" {
		b.WriteString(" (host ")
		b.WriteString(e.Host)
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches the router's and the tcp proxy's sentinels.
func (e *Error) Is(target error) bool {
	switch e.Kind {
	case pool.NoCluster:
		return target == router.ErrNoCluster || target == tcp.ErrNoCluster
	case pool.NoHealthyUpstream:
		return target == router.ErrNoHealthyUpstream || target == tcp.ErrNoHealthyUpstream
	case pool.Overflow:
		return target == router.ErrOverflow || target == tcp.ErrOverflow
	case pool.RetryOverflow:
		return target == router.ErrRetryOverflow
	case pool.ConnectFailure:
		return target == router.ErrConnectFailure
	case pool.ConnectTimeout:
		return target == router.ErrConnectTimeout
	case pool.RefusedStream:
		return target == router.ErrRefusedStream
	case pool.Reset:
		return target == router.ErrReset
	case pool.ConnectionTermination:
		return target == router.ErrConnectionTermination
	}
	return false
}

// Flag is Envoy's response flag for the failure ("" for none).
func (e *Error) Flag() string { return e.Kind.Flag() }

// wrap turns an error of the pool into an Error of cluster.
func wrap(cluster string, err error) error {
	var pe *pool.Error
	if errors.As(err, &pe) {
		return &Error{Kind: pe.Kind, Cluster: cluster, Host: pe.Host, Err: pe.Err}
	}
	return &Error{Kind: pool.Reset, Cluster: cluster, Err: err}
}
