package pool

import (
	"context"
	"errors"
	"net"
	"strings"
)

// Kind is why an upstream attempt produced no response. Each kind maps to
// one of Envoy's response flags (Flag).
type Kind uint8

const (
	// NoCluster: the cluster does not exist (NC).
	NoCluster Kind = iota + 1
	// NoHealthyUpstream: no host to send to (UH).
	NoHealthyUpstream
	// Overflow: a request circuit breaker is open — max_requests, or
	// max_pending_requests while waiting for a connection — or, for TCP,
	// max_connections (UO).
	Overflow
	// RetryOverflow: max_retries (or the retry budget) is used up; the
	// router stops retrying and keeps the previous outcome (no flag).
	RetryOverflow
	// ConnectFailure: the connection could not be established (UF).
	ConnectFailure
	// ConnectTimeout: connect_timeout passed while connecting (UF).
	ConnectTimeout
	// Timeout: the request's context reached its deadline (UT; the
	// router decides on the reply from its own timers).
	Timeout
	// Canceled: the request's context was canceled, usually because the
	// downstream went away (DC). Not held against the host.
	Canceled
	// RefusedStream: the host refused the stream before processing it
	// (HTTP/2 REFUSED_STREAM or GOAWAY) (UR; retry_on refused-stream).
	RefusedStream
	// Reset: the request was reset before or during the response (UR).
	Reset
	// ConnectionTermination: the connection closed under the request (UC).
	ConnectionTermination
)

func (k Kind) String() string {
	switch k {
	case NoCluster:
		return "no_cluster"
	case NoHealthyUpstream:
		return "no_healthy_upstream"
	case Overflow:
		return "overflow"
	case RetryOverflow:
		return "retry_overflow"
	case ConnectFailure:
		return "connection_failure"
	case ConnectTimeout:
		return "connection_timeout"
	case Timeout:
		return "timeout"
	case Canceled:
		return "canceled"
	case RefusedStream:
		return "remote_refused_stream_reset"
	case Reset:
		return "remote_reset"
	case ConnectionTermination:
		return "connection_termination"
	}
	return "unknown"
}

// Flag is Envoy's short response flag for the kind ("" for none).
func (k Kind) Flag() string {
	switch k {
	case NoCluster:
		return "NC"
	case NoHealthyUpstream:
		return "UH"
	case Overflow:
		return "UO"
	case ConnectFailure, ConnectTimeout:
		return "UF"
	case Timeout:
		return "UT"
	case Canceled:
		return "DC"
	case RefusedStream, Reset:
		return "UR"
	case ConnectionTermination:
		return "UC"
	}
	return ""
}

// Error is a failed attempt: its Kind and the underlying cause.
type Error struct {
	Kind Kind
	// Host is the host's address, "" when none was picked.
	Host string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("upstream ")
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

// ErrUnsupportedTransport is wrapped by dial functions that refuse a
// host because its transport socket (TLS, typically) is not available.
// Such failures are configuration problems: the pool fails the request
// with ConnectFailure but does not hold it against the host's outlier
// detection.
var ErrUnsupportedTransport = errors.New("transport socket not supported")

// ErrClosed fails requests of a pool that was closed.
var ErrClosed = errors.New("connection pool closed")

var errConnectTimeout = errors.New("connect_timeout reached")

// ConnectTimedOut reports whether a dial under dctx failed with err
// because dctx's deadline (the connect timeout) passed. The dialer's
// socket deadline can fire an instant before the context's own timer, so
// a network timeout counts too. The caller has ruled out the request's
// own context, so dctx can only have ended by the connect timeout.
func ConnectTimedOut(dctx context.Context, err error) bool {
	if dctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsTimeout reports whether ctx ended by a timeout rather than a
// cancellation: its deadline passed, or its cancel cause says it is a
// timeout (an error with a Timeout() bool method returning true, or one
// wrapping context.DeadlineExceeded).
func IsTimeout(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(cause, &t) && t.Timeout()
}

// contextKind is the kind of a failure caused by ctx ending.
func contextKind(ctx context.Context) Kind {
	if IsTimeout(ctx) {
		return Timeout
	}
	return Canceled
}

// refused reports errors of streams the host never processed: HTTP/2
// REFUSED_STREAM resets and streams cut off by GOAWAY (net/http has no
// exported types for them).
func refused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "REFUSED_STREAM") || strings.Contains(s, "GOAWAY")
}
