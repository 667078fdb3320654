// Package accesslog is Envoy's access loggers for the proxy: the file
// logger (envoy.access_loggers.file, FileAccessLog) and the stdout/stderr
// loggers (envoy.access_loggers.stdout/stderr), one line per HTTP request
// and per tcp_proxy connection, in Envoy's text or JSON formats.
//
//	access_log typed_config ──Logs.Compile──► *Logger (format + shared sink; error → NACK)
//	   HTTP: the connection manager builds it from its registry (Logs.Factory,
//	         under FileTypeURL/StdoutTypeURL/StderrTypeURL) and calls Observe(*Record)
//	   TCP:  tcp.Config.AccessLogs = Logs (CompileTCP); called with each closed Session
//
//	Logger ──append line──► sink (one per path, bounded buffer) ──Run: every
//	   FlushInterval (1 s) or at 64 KiB──► file │ /dev/stdout │ /dev/stderr
//
// Formats: text (FileAccessLog.format, log_format text_format /
// text_format_source inline), JSON (json_format, typed_json_format,
// log_format json_format: one object per line, keys sorted, numeric
// operators as numbers, strings otherwise, null for a missing value, as
// Istio's accessLogEncoding JSON shows), omit_empty_values. No format:
// Envoy's default. Unknown operators, malformed commands, formatter
// extensions, text_format_source from a file and access log filters are
// compile errors naming the field.
//
// Operators: START_TIME[(strftime, %s, %f, %1f..%9f)], REQ/RESP/TRAILER
// (NAME?ALT)[:N] (REQ also :method :path :authority :scheme), PROTOCOL,
// RESPONSE_CODE, RESPONSE_FLAGS, RESPONSE_CODE_DETAILS, BYTES_RECEIVED,
// BYTES_SENT, DURATION, UPSTREAM_HOST, UPSTREAM_CLUSTER[_RAW],
// UPSTREAM_REQUEST_ATTEMPT_COUNT, DOWNSTREAM_{LOCAL,REMOTE,DIRECT_REMOTE}
// _ADDRESS[_WITHOUT_PORT], DOWNSTREAM_{LOCAL,REMOTE}_PORT,
// REQUESTED_SERVER_NAME, ROUTE_NAME, GRPC_STATUS[(CAMEL_STRING|SNAKE_STRING|
// NUMBER)], TRACE_ID, HOSTNAME. CONNECTION_TERMINATION_DETAILS,
// UPSTREAM_TRANSPORT_FAILURE_REASON and UPSTREAM_LOCAL_ADDRESS are
// accepted and always empty ("-"): the proxy does not track them yet.
//
// Writing never blocks a request: a line goes into its file's buffer under
// a short lock; Run (one goroutine, owned by the proxy's role) writes the
// buffers out. A line that does not fit (the file is slower than the
// traffic, or Run is not running) is dropped and counted (Dropped); failed
// opens and writes are counted (WriteErrors). Files are opened by the
// first flush, not at compile time, and stay open until Close (Run's end):
// a path no longer configured keeps its descriptor until then.
package accesslog
