package accesslog

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// operator is one compiled command operator.
type operator struct {
	eval   func(e *entry) value
	time   *timeFormat // START_TIME only
	maxLen int
}

// newOperator compiles %NAME(arg)%. Unknown operators, and arguments
// where none belong, are errors.
func newOperator(name, arg string, hasArg bool) (*operator, error) {
	switch name {
	case "REQ", "RESP", "TRAILER":
		if !hasArg || arg == "" {
			return nil, errors.New("needs a header name: " + name + "(NAME) or " + name + "(NAME?ALT)")
		}
		return headerOperator(name, arg)
	case "START_TIME":
		tf, err := compileTime(arg)
		if err != nil {
			return nil, err
		}
		return &operator{time: tf, eval: func(e *entry) value {
			if e.rec != nil {
				return value{kind: stamp, t: e.rec.Start}
			}
			return value{kind: stamp, t: e.sess.Start}
		}}, nil
	case "GRPC_STATUS":
		return grpcOperator(arg)
	}
	eval, ok := simpleOperators[name]
	if !ok && name != "HOSTNAME" {
		return nil, errors.New("unknown command operator")
	}
	if hasArg {
		return nil, errors.New("takes no argument")
	}
	if name == "HOSTNAME" {
		h, err := os.Hostname()
		if err != nil {
			h = ""
		}
		return &operator{eval: func(*entry) value { return text(h) }}, nil
	}
	return &operator{eval: eval}, nil
}

// simpleOperators are the operators without arguments, by name.
var simpleOperators = map[string]func(e *entry) value{
	"PROTOCOL": func(e *entry) value {
		if e.rec == nil {
			return value{}
		}
		return text(e.rec.Protocol)
	},
	"RESPONSE_CODE": func(e *entry) value {
		if e.rec == nil {
			return value{kind: num}
		}
		return value{kind: num, n: int64(e.rec.ResponseCode)}
	},
	"RESPONSE_FLAGS": func(e *entry) value {
		if e.rec == nil {
			return value{kind: str, s: e.sess.ResponseFlags()}
		}
		return value{kind: str, s: e.rec.Flags.String()}
	},
	"RESPONSE_CODE_DETAILS": func(e *entry) value {
		if e.rec == nil {
			return value{}
		}
		return text(e.rec.Details)
	},
	// Not tracked: Envoy prints them only for connections its filters
	// terminated, or TLS handshake failures upstream.
	"CONNECTION_TERMINATION_DETAILS":    func(*entry) value { return value{} },
	"UPSTREAM_TRANSPORT_FAILURE_REASON": func(*entry) value { return value{} },
	"UPSTREAM_LOCAL_ADDRESS":            func(*entry) value { return value{} },
	"BYTES_RECEIVED": func(e *entry) value {
		if e.rec == nil {
			return value{kind: num, n: e.sess.ReceivedBytes()}
		}
		return value{kind: num, n: e.rec.BytesReceived}
	},
	"BYTES_SENT": func(e *entry) value {
		if e.rec == nil {
			return value{kind: num, n: e.sess.SentBytes()}
		}
		return value{kind: num, n: e.rec.BytesSent}
	},
	"DURATION": func(e *entry) value {
		if e.rec == nil {
			return value{kind: num, n: e.end.Sub(e.sess.Start).Milliseconds()}
		}
		return value{kind: num, n: e.rec.Duration.Milliseconds()}
	},
	"UPSTREAM_HOST": func(e *entry) value {
		if e.rec == nil {
			if e.sess.Upstream == nil {
				return value{}
			}
			return text(e.sess.Upstream.String())
		}
		return text(e.rec.UpstreamHost)
	},
	"UPSTREAM_CLUSTER":     cluster,
	"UPSTREAM_CLUSTER_RAW": cluster,
	"UPSTREAM_REQUEST_ATTEMPT_COUNT": func(e *entry) value {
		if e.rec == nil {
			return value{kind: num, n: int64(e.sess.ConnectAttempts)}
		}
		return value{kind: num, n: int64(e.rec.Attempts)}
	},
	"DOWNSTREAM_LOCAL_ADDRESS":                      func(e *entry) value { return addr(local(e), true) },
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         func(e *entry) value { return addr(local(e), false) },
	"DOWNSTREAM_LOCAL_PORT":                         func(e *entry) value { return port(local(e)) },
	"DOWNSTREAM_REMOTE_ADDRESS":                     func(e *entry) value { return addr(remote(e), true) },
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":        func(e *entry) value { return addr(remote(e), false) },
	"DOWNSTREAM_REMOTE_PORT":                        func(e *entry) value { return port(remote(e)) },
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":              func(e *entry) value { return addr(remote(e), true) },
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": func(e *entry) value { return addr(remote(e), false) },
	"REQUESTED_SERVER_NAME": func(e *entry) value {
		if e.rec == nil {
			if e.sess.Downstream == nil {
				return value{}
			}
			return text(e.sess.Downstream.SNI)
		}
		return text(e.rec.ServerName)
	},
	"ROUTE_NAME": func(e *entry) value {
		if e.rec == nil {
			return value{}
		}
		return text(e.rec.RouteName)
	},
	"TRACE_ID": func(e *entry) value {
		if e.rec == nil {
			return value{}
		}
		return traceID(e.rec.TraceID)
	},
}

func text(s string) value {
	if s == "" {
		return value{}
	}
	return value{kind: str, s: s}
}

func port(ap netip.AddrPort) value {
	if !ap.IsValid() {
		return value{}
	}
	return value{kind: num, n: int64(ap.Port())}
}

func cluster(e *entry) value {
	if e.rec == nil {
		return text(e.sess.Cluster)
	}
	return text(e.rec.Cluster)
}

func local(e *entry) netip.AddrPort {
	if e.rec != nil {
		return e.rec.Destination
	}
	if e.sess.Downstream == nil {
		return netip.AddrPort{}
	}
	return e.sess.Downstream.Destination
}

func remote(e *entry) netip.AddrPort {
	if e.rec != nil {
		return e.rec.Source
	}
	if e.sess.Downstream == nil {
		return netip.AddrPort{}
	}
	return e.sess.Downstream.Source
}

// headerOperator compiles REQ, RESP and TRAILER: the first of NAME and
// ALT that is present. REQ also reads the pseudo-headers :method, :path,
// :authority and :scheme.
func headerOperator(name, arg string) (*operator, error) {
	main, alt, _ := strings.Cut(arg, "?")
	if main == "" || strings.Contains(alt, "?") {
		return nil, fmt.Errorf("invalid header names %q", arg)
	}
	get := headerGetter(name, main)
	if get == nil {
		return nil, fmt.Errorf("%q is not a header %s can read", main, name)
	}
	getAlt := func(*filter.Record) string { return "" }
	if alt != "" {
		if getAlt = headerGetter(name, alt); getAlt == nil {
			return nil, fmt.Errorf("%q is not a header %s can read", alt, name)
		}
	}
	return &operator{eval: func(e *entry) value {
		if e.rec == nil {
			return value{}
		}
		if v := get(e.rec); v != "" {
			return value{kind: str, s: v}
		}
		return text(getAlt(e.rec))
	}}, nil
}

func headerGetter(op, h string) func(*filter.Record) string {
	if strings.HasPrefix(h, ":") {
		if op != "REQ" {
			return nil
		}
		switch strings.ToLower(h) {
		case ":method":
			return func(r *filter.Record) string { return r.Method }
		case ":path":
			return func(r *filter.Record) string { return r.Path }
		case ":authority":
			return func(r *filter.Record) string { return r.Authority }
		case ":scheme":
			return func(r *filter.Record) string { return r.Header.Get("X-Forwarded-Proto") }
		}
		return nil
	}
	key := http.CanonicalHeaderKey(h)
	switch op {
	case "REQ":
		return func(r *filter.Record) string { return h1wire.Get(r.Header, key) }
	case "RESP":
		return func(r *filter.Record) string { return h1wire.Get(r.ResponseHeader, key) }
	default: // TRAILER
		prefixed := http.TrailerPrefix + key
		return func(r *filter.Record) string {
			if v := h1wire.Get(r.ResponseHeader, prefixed); v != "" {
				return v
			}
			// Trailers declared in the Trailer header.
			for _, t := range r.ResponseHeader["Trailer"] {
				for name := range strings.SplitSeq(t, ",") {
					if http.CanonicalHeaderKey(strings.TrimSpace(name)) == key {
						return h1wire.Get(r.ResponseHeader, key)
					}
				}
			}
			return ""
		}
	}
}

// gRPC status names, as Envoy's GRPC_STATUS prints them.
var grpcNames = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

var grpcSnake = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcOperator compiles GRPC_STATUS(CAMEL_STRING|SNAKE_STRING|NUMBER).
func grpcOperator(arg string) (*operator, error) {
	var names []string
	switch arg {
	case "", "CAMEL_STRING":
		names = grpcNames[:]
	case "SNAKE_STRING":
		names = grpcSnake[:]
	case "NUMBER":
	default:
		return nil, fmt.Errorf("unknown format %q (CAMEL_STRING, SNAKE_STRING or NUMBER)", arg)
	}
	return &operator{eval: func(e *entry) value {
		if e.rec == nil || !e.rec.GRPCStatusSet {
			return value{}
		}
		c := e.rec.GRPCStatus
		if names == nil {
			return value{kind: num, n: int64(c)}
		}
		if c >= 0 && c < len(names) {
			return value{kind: str, s: names[c]}
		}
		return value{kind: str, s: strconv.Itoa(c)}
	}}, nil
}

// timeFormat is a START_TIME format: Envoy's default (ISO 8601, UTC,
// milliseconds) or a strftime pattern with %f/%1f..%9f fractions and %s
// (epoch seconds).
type timeFormat struct {
	pieces []timePiece
}

type timePiece struct {
	lit    string // literal text
	layout string // a Go layout
	epoch  bool   // %s
	frac   int    // %Nf: N digits of fraction
}

// strftime conversions to Go layouts.
var strftime = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03", 'M': "04", 'S': "05",
	'p': "PM", 'b': "Jan", 'h': "Jan", 'B': "January", 'a': "Mon", 'A': "Monday", 'j': "002",
	'z': "-0700", 'Z': "MST", 'F': "2006-01-02", 'T': "15:04:05", 'D': "01/02/06", 'R': "15:04",
}

func compileTime(arg string) (*timeFormat, error) {
	if arg == "" {
		return nil, nil
	}
	tf := &timeFormat{}
	var lit strings.Builder
	add := func(p timePiece) {
		if lit.Len() > 0 {
			tf.pieces = append(tf.pieces, timePiece{lit: lit.String()})
			lit.Reset()
		}
		if p != (timePiece{}) {
			tf.pieces = append(tf.pieces, p)
		}
	}
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		if i+1 >= len(arg) {
			return nil, errors.New("format ends with '%'")
		}
		i++
		d := arg[i]
		switch {
		case d == '%':
			lit.WriteByte('%')
		case d == 's':
			add(timePiece{epoch: true})
		case d == 'f':
			add(timePiece{frac: 9})
		case d >= '1' && d <= '9' && i+1 < len(arg) && arg[i+1] == 'f':
			add(timePiece{frac: int(d - '0')})
			i++
		default:
			l, ok := strftime[d]
			if !ok {
				return nil, fmt.Errorf("unsupported time conversion %%%c", d)
			}
			add(timePiece{layout: l})
		}
	}
	add(timePiece{})
	return tf, nil
}

// append formats t (UTC).
func (tf *timeFormat) append(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if tf == nil {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	}
	for _, p := range tf.pieces {
		switch {
		case p.epoch:
			dst = strconv.AppendInt(dst, t.Unix(), 10)
		case p.lit != "":
			dst = append(dst, p.lit...)
		case p.frac > 0:
			ns := strconv.Itoa(t.Nanosecond() + 1e9)[1:] // nine digits
			dst = append(dst, ns[:p.frac]...)
		default:
			dst = t.AppendFormat(dst, p.layout)
		}
	}
	return dst
}
