package http

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Effective is what a compiled Manager enforces, read from where each
// value is applied (the HTTP/1 codec, the net/http server that serves
// HTTP/2, the stream timers and the HTTP/2 frame guard), not from the
// configuration: a default that is compiled but not handed on shows up.
type Effective struct {
	// The HTTP/1 codec (h1server.go).
	H1MaxHeadBytes          int
	H1RequestHeadersTimeout time.Duration
	H1IdleTimeout           time.Duration
	// The net/http server (HTTP/2, and HTTP/1 handed over to it).
	SrvMaxHeaderBytes      int
	SrvReadHeaderTimeout   time.Duration
	SrvIdleTimeout         time.Duration
	H2MaxConcurrentStreams int
	// Every request (headers.go, handler.go).
	MaxHeadersCount   int
	Underscores       corev3.HttpProtocolOptions_HeadersWithUnderscoresAction
	StreamIdleTimeout time.Duration
	RequestTimeout    time.Duration
	// The HTTP/2 frame guard (h2guard.go).
	H2MaxHeaderBlock       int
	H2MaxEmptyFrames       uint64
	H2MaxPriorityPerStream uint64
	H2MaxWindowUpdates     uint64
	H2MaxControlFrames     uint64
}

// EffectiveLimits reads m's limits and timeouts, for tests.
func EffectiveLimits(m *Manager) Effective {
	srv := m.srv.Load()
	return Effective{
		H1MaxHeadBytes:          m.h1.maxHead,
		H1RequestHeadersTimeout: m.h1.headerTimeout,
		H1IdleTimeout:           m.h1.idleTimeout,
		SrvMaxHeaderBytes:       srv.MaxHeaderBytes,
		SrvReadHeaderTimeout:    srv.ReadHeaderTimeout,
		SrvIdleTimeout:          srv.IdleTimeout,
		H2MaxConcurrentStreams:  srv.HTTP2.MaxConcurrentStreams,
		MaxHeadersCount:         m.cfg.limits.maxHeadersCount,
		Underscores:             m.cfg.limits.underscores,
		StreamIdleTimeout:       m.cfg.timeouts.streamIdle,
		RequestTimeout:          m.cfg.timeouts.request,
		H2MaxHeaderBlock:        m.cfg.h2lim.maxHeaderBlock,
		H2MaxEmptyFrames:        m.cfg.h2lim.maxEmpty,
		H2MaxPriorityPerStream:  m.cfg.h2lim.maxPriority,
		H2MaxWindowUpdates:      m.cfg.h2lim.maxWindowUpdates,
		H2MaxControlFrames:      m.cfg.h2lim.maxControl,
	}
}
