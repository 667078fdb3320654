package accesslog

import (
	"errors"
	"fmt"
	"sync"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
)

// Type URLs of the access loggers compiled here.
const (
	FileTypeURL   = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
	StdoutTypeURL = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	StderrTypeURL = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
)

// TypeURLs lists the access logger types Logs compiles.
var TypeURLs = []string{FileTypeURL, StdoutTypeURL, StderrTypeURL}

// Logger is one compiled access logger: a format and the file it writes
// to. As an HTTP filter it is a no-op in the chain (Wrap returns next);
// the connection manager hands it every request's record through Observe.
type Logger struct {
	logs   *Logs
	format *Format
	sink   *sink
}

// bufs pools line buffers.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Wrap implements filter.Filter: the logger does nothing in the chain.
func (l *Logger) Wrap(next filter.Handler) filter.Handler { return next }

// Observe logs an HTTP request once it has ended (the connection
// manager's Observer).
func (l *Logger) Observe(r *filter.Record) {
	l.log(&entry{rec: r})
}

// LogTCP logs a closed tcp_proxy session.
func (l *Logger) LogTCP(s *tcp.Session) {
	l.log(&entry{sess: s, end: time.Now()})
}

func (l *Logger) log(e *entry) {
	bp := bufs.Get().(*[]byte)
	line := l.format.append((*bp)[:0], e)
	l.logs.write(l.sink, line)
	if cap(line) <= 64<<10 {
		*bp = line
		bufs.Put(bp)
	}
}

// Factory returns the filter.Factory of the access loggers, to register
// under each of TypeURLs: the connection manager builds its access_log
// entries with it.
func (l *Logs) Factory() filter.Factory {
	return filter.FactoryFunc(func(_ string, config *anypb.Any) (filter.Filter, error) {
		return l.Compile(config)
	})
}

// Compile builds an access logger from its typed_config (file, stdout or
// stderr). Errors name the field and the reason.
func (l *Logs) Compile(config *anypb.Any) (*Logger, error) {
	msg, err := config.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if err := pgv.ValidateAll(msg); err != nil {
		return nil, err
	}
	var path string
	var f *Format
	switch c := msg.(type) {
	case *filev3.FileAccessLog:
		path = c.GetPath()
		f, err = fileFormat(c)
	case *streamv3.StdoutAccessLog:
		path = "/dev/stdout"
		f, err = streamFormat(c.GetLogFormat())
	case *streamv3.StderrAccessLog:
		path = "/dev/stderr"
		f, err = streamFormat(c.GetLogFormat())
	default:
		return nil, fmt.Errorf("unsupported access logger type %q", config.GetTypeUrl())
	}
	if err != nil {
		return nil, err
	}
	return &Logger{logs: l, format: f, sink: l.sink(path)}, nil
}

func fileFormat(c *filev3.FileAccessLog) (*Format, error) {
	switch v := c.GetAccessLogFormat().(type) {
	case *filev3.FileAccessLog_Format:
		if v.Format == "" {
			return compileText(DefaultFormat)
		}
		f, err := compileText(v.Format)
		if err != nil {
			return nil, fmt.Errorf("format: %w", err)
		}
		return f, nil
	case *filev3.FileAccessLog_JsonFormat:
		f, err := compileJSON(v.JsonFormat)
		if err != nil {
			return nil, fmt.Errorf("json_format: %w", err)
		}
		return f, nil
	case *filev3.FileAccessLog_TypedJsonFormat:
		f, err := compileJSON(v.TypedJsonFormat)
		if err != nil {
			return nil, fmt.Errorf("typed_json_format: %w", err)
		}
		return f, nil
	case *filev3.FileAccessLog_LogFormat:
		f, err := compileSubstitution(v.LogFormat)
		if err != nil {
			return nil, fmt.Errorf("log_format: %w", err)
		}
		return f, nil
	}
	return compileText(DefaultFormat)
}

func streamFormat(sf *corev3.SubstitutionFormatString) (*Format, error) {
	if sf == nil {
		return compileText(DefaultFormat)
	}
	f, err := compileSubstitution(sf)
	if err != nil {
		return nil, fmt.Errorf("log_format: %w", err)
	}
	return f, nil
}

// CompileTCP compiles a tcp_proxy's access_log entries into the function
// the proxy calls with each closed session (nil when there are none). It
// implements tcp.AccessLogs.
func (l *Logs) CompileTCP(logs []*accesslogv3.AccessLog) (func(*tcp.Session), error) {
	if len(logs) == 0 {
		return nil, nil
	}
	loggers := make([]*Logger, 0, len(logs))
	for i, al := range logs {
		lg, err := l.CompileEntry(al)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d] (%s): %w", i, al.GetName(), err)
		}
		loggers = append(loggers, lg)
	}
	return func(s *tcp.Session) {
		for _, lg := range loggers {
			lg.LogTCP(s)
		}
	}, nil
}

// CompileEntry compiles one access_log entry. Access log filters are not
// supported and are an error (logging what the filter would drop, or the
// reverse, is not what was asked for).
func (l *Logs) CompileEntry(al *accesslogv3.AccessLog) (*Logger, error) {
	if al.GetFilter() != nil {
		return nil, errors.New("filter: access log filters are not supported")
	}
	tc := al.GetTypedConfig()
	if tc == nil {
		return nil, errors.New("no typed_config")
	}
	return l.Compile(tc)
}
