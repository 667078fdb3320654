package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultBufferLimit   = 1 << 20  // bytes held per file before lines are dropped
	DefaultFlushBytes    = 64 << 10 // Envoy's file flush threshold
	DefaultFlushInterval = time.Second
)

// Config configures Logs.
type Config struct {
	// BufferLimit bounds the bytes buffered per file; a line that does
	// not fit is dropped and counted (0: DefaultBufferLimit).
	BufferLimit int
	// FlushBytes asks for an early flush once a file buffers this much
	// (0: DefaultFlushBytes).
	FlushBytes int
	// FlushInterval is how often buffered lines are written
	// (0: DefaultFlushInterval).
	FlushInterval time.Duration
	// Open opens a log file for appending. Default: /dev/stdout and
	// /dev/stderr are the process's streams, other paths are created or
	// appended to (mode 0644).
	Open func(path string) (io.WriteCloser, error)
	// Logger reports write errors (default: discarded).
	Logger *slog.Logger
}

// Logs owns the access log files of a proxy: every logger compiled from
// it writes through one buffered sink per path, flushed by Run. Appending
// a line never blocks on I/O. It is safe for concurrent use.
type Logs struct {
	cfg  Config
	kick chan struct{}

	mu    sync.Mutex
	sinks map[string]*sink

	dropped     atomic.Uint64
	writeErrors atomic.Uint64
	closeOnce   sync.Once
}

// New returns Logs; it does no I/O (files are opened by the first flush).
func New(cfg Config) *Logs {
	if cfg.BufferLimit <= 0 {
		cfg.BufferLimit = DefaultBufferLimit
	}
	if cfg.FlushBytes <= 0 || cfg.FlushBytes > cfg.BufferLimit {
		cfg.FlushBytes = min(DefaultFlushBytes, cfg.BufferLimit)
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Open == nil {
		cfg.Open = openFile
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Logs{cfg: cfg, kick: make(chan struct{}, 1), sinks: map[string]*sink{}}
}

// Dropped is the number of lines dropped because their file's buffer was
// full (the disk or pipe slower than the traffic, or Run not running).
func (l *Logs) Dropped() uint64 { return l.dropped.Load() }

// WriteErrors is the number of failed opens and writes; their lines are
// lost.
func (l *Logs) WriteErrors() uint64 { return l.writeErrors.Load() }

// Run flushes the buffers every FlushInterval, and early when one fills
// up, until ctx ends; then it flushes once more and closes the files.
func (l *Logs) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return l.Close()
		case <-t.C:
		case <-l.kick:
		}
		l.Flush()
	}
}

// Flush writes every buffered line.
func (l *Logs) Flush() {
	for _, s := range l.all() {
		l.flush(s)
	}
}

// Close flushes and closes the files. Lines logged afterwards are
// buffered and never written.
func (l *Logs) Close() error {
	var errs []error
	l.closeOnce.Do(func() {
		for _, s := range l.all() {
			l.flush(s)
			s.wmu.Lock()
			if s.w != nil {
				errs = append(errs, s.w.Close())
				s.w = nil
			}
			s.closed = true
			s.wmu.Unlock()
		}
	})
	return errors.Join(errs...)
}

func (l *Logs) all() []*sink {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*sink, 0, len(l.sinks))
	for _, s := range l.sinks {
		out = append(out, s)
	}
	return out
}

// sink returns the shared buffer of a path.
func (l *Logs) sink(path string) *sink {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sinks[path]
	if !ok {
		s = &sink{path: path}
		l.sinks[path] = s
	}
	return s
}

// sink buffers the lines of one file. mu guards buf; wmu serialises
// writes (and owns w and spare).
type sink struct {
	path string

	mu  sync.Mutex
	buf []byte

	wmu    sync.Mutex
	w      io.WriteCloser
	spare  []byte
	closed bool
}

// write appends a whole line, or drops it when the buffer is full.
func (l *Logs) write(s *sink, line []byte) {
	s.mu.Lock()
	if len(s.buf)+len(line) > l.cfg.BufferLimit {
		s.mu.Unlock()
		l.dropped.Add(1)
		l.wake()
		return
	}
	s.buf = append(s.buf, line...)
	full := len(s.buf) >= l.cfg.FlushBytes
	s.mu.Unlock()
	if full {
		l.wake()
	}
}

func (l *Logs) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// flush swaps the buffer out and writes it, outside the append lock.
func (l *Logs) flush(s *sink) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return
	}
	s.mu.Lock()
	data := s.buf
	s.buf = s.spare[:0]
	s.mu.Unlock()
	s.spare = data
	if len(data) == 0 {
		return
	}
	if s.w == nil {
		w, err := l.cfg.Open(s.path)
		if err != nil {
			l.writeErrors.Add(1)
			l.cfg.Logger.Warn("access log: opening file", "path", s.path, "error", err)
			return
		}
		s.w = w
	}
	if _, err := s.w.Write(data); err != nil {
		l.writeErrors.Add(1)
		l.cfg.Logger.Warn("access log: writing", "path", s.path, "error", err)
	}
}

// openFile opens path for appending; /dev/stdout and /dev/stderr are the
// process's own streams (not closed).
func openFile(path string) (io.WriteCloser, error) {
	switch path {
	case "/dev/stdout":
		return nopCloser{os.Stdout}, nil
	case "/dev/stderr":
		return nopCloser{os.Stderr}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening access log: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
