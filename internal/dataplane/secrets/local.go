package secrets

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Name prefixes of file-based secrets (see internal/xds/gen/mtls).
const (
	FileCertPrefix   = "file-cert:"
	FileRootPrefix   = "file-root:"
	SystemRoots      = "file-root:system"
	KubernetesPrefix = "kubernetes://"
)

// DefaultCheckInterval is how often, at most, a file secret's files are
// checked for changes.
const DefaultCheckInterval = time.Second

// maxFileBytes bounds each secret file.
const maxFileBytes = 1 << 20

// Workload is the source of "default" and "ROOTCA": the identity manager
// (package dataplane/identity). Its errors wrap ErrNotReady while the
// certificate is being fetched.
type Workload interface {
	Certificate() (*tls.Certificate, error)
	Roots() (*x509.CertPool, error)
	Wait(ctx context.Context) error
}

// Config configures a Local store.
type Config struct {
	// Workload serves "default" and "ROOTCA"; nil when the proxy has no
	// mesh identity (no CA configured): those names then fail.
	Workload Workload
	// CheckInterval is how often, at most, file secrets are checked for
	// changes (default DefaultCheckInterval).
	CheckInterval time.Duration
	Logger        *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Local is the proxy's Store: the workload identity from Workload,
// file-cert/file-root names from disk (read on first use, re-read when a
// file's size or modification time changes, checked at most every
// CheckInterval on access; an invalid file keeps the last good material),
// file-root:system from the host's trust store. kubernetes:// names are
// not available in this proxy.
type Local struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*fileEntry // file-cert and file-root names seen so far

	systemOnce sync.Once
	system     *x509.CertPool
	systemErr  error
}

// New returns a Local store; it does no I/O.
func New(cfg Config) *Local {
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Local{cfg: cfg, log: cfg.Logger, entries: map[string]*fileEntry{}}
}

var _ Store = (*Local)(nil)

// Certificate implements Store.
func (l *Local) Certificate(name string) (*tls.Certificate, error) {
	switch {
	case name == WorkloadCertificate:
		if l.cfg.Workload == nil {
			return nil, noIdentity(name)
		}
		c, err := l.cfg.Workload.Certificate()
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, err)
		}
		return c, nil
	case strings.HasPrefix(name, FileCertPrefix):
		e, err := l.entry(name)
		if err != nil {
			return nil, err
		}
		v, err := e.get(l)
		if err != nil {
			return nil, err
		}
		return v.cert, nil
	}
	if err := l.unavailable(name); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("secret %q is a trust bundle, not a certificate and key", name)
}

// Roots implements Store.
func (l *Local) Roots(name string) (*x509.CertPool, error) {
	switch {
	case name == RootCA:
		if l.cfg.Workload == nil {
			return nil, noIdentity(name)
		}
		p, err := l.cfg.Workload.Roots()
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, err)
		}
		return p, nil
	case name == SystemRoots:
		l.systemOnce.Do(func() {
			if l.system, l.systemErr = x509.SystemCertPool(); l.systemErr != nil {
				l.systemErr = fmt.Errorf("secret %q: the host's trust store: %w", name, l.systemErr)
			}
		})
		return l.system, l.systemErr
	case strings.HasPrefix(name, FileRootPrefix):
		e, err := l.entry(name)
		if err != nil {
			return nil, err
		}
		v, err := e.get(l)
		if err != nil {
			return nil, err
		}
		return v.pool, nil
	}
	if err := l.unavailable(name); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("secret %q is a certificate and key, not a trust bundle", name)
}

// Wait implements Store. The workload names wait for the identity
// manager; file names are retried every CheckInterval until their files
// are valid. Names that can never be served here (kubernetes://, unknown
// schemes, the workload names without a CA) return their error at once
// instead of blocking forever.
func (l *Local) Wait(ctx context.Context, name string) error {
	if (name == WorkloadCertificate || name == RootCA) && l.cfg.Workload != nil {
		if err := l.cfg.Workload.Wait(ctx); err != nil {
			return fmt.Errorf("secret %q: %w", name, err)
		}
		return nil
	}
	for {
		err := l.try(name)
		if err == nil || !errors.Is(err, ErrNotReady) || strings.HasPrefix(name, KubernetesPrefix) || name == WorkloadCertificate || name == RootCA {
			return err
		}
		t := time.NewTimer(l.cfg.CheckInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for secret %q: %w (last: %v)", name, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// try resolves name as whichever kind it is.
func (l *Local) try(name string) error {
	if name == RootCA || strings.HasPrefix(name, FileRootPrefix) {
		_, err := l.Roots(name)
		return err
	}
	_, err := l.Certificate(name)
	return err
}

func noIdentity(name string) error {
	return fmt.Errorf("%w: secret %q: this proxy has no mesh identity (no CA address configured)", ErrNotReady, name)
}

// unavailable explains names this store cannot serve (nil for names of
// the other kind it can).
func (l *Local) unavailable(name string) error {
	switch {
	case name == WorkloadCertificate, name == RootCA, strings.HasPrefix(name, FileCertPrefix), strings.HasPrefix(name, FileRootPrefix):
		return nil
	case strings.HasPrefix(name, KubernetesPrefix):
		return fmt.Errorf("%w: secret %q: Kubernetes secrets (credentialName) are not available to this proxy", ErrNotReady, name)
	}
	return fmt.Errorf("secret %q: unknown name (want default, ROOTCA, file-cert:<chain>~<key>, file-root:<ca>, file-root:system)", name)
}

// entry returns the file entry of name, created on first use.
func (l *Local) entry(name string) (*fileEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[name]; ok {
		return e, nil
	}
	e := &fileEntry{name: name}
	if rest, ok := strings.CutPrefix(name, FileCertPrefix); ok {
		chain, key, ok := strings.Cut(rest, "~")
		if !ok || chain == "" || key == "" || strings.Contains(key, "~") {
			return nil, fmt.Errorf("secret %q: want file-cert:<chain file>~<key file>", name)
		}
		e.paths, e.parse = []string{chain, key}, parseKeyPair
	} else {
		path := strings.TrimPrefix(name, FileRootPrefix)
		if path == "" {
			return nil, fmt.Errorf("secret %q: want file-root:<CA file>", name)
		}
		e.paths, e.parse = []string{path}, parseBundle
	}
	e.stamps = make([]stamp, len(e.paths))
	l.entries[name] = e
	return e, nil
}

// fileEntry is one file secret. val is read lock-free on every
// handshake; mu serialises the checks that may replace it.
type fileEntry struct {
	name  string
	paths []string
	parse func(paths []string, data [][]byte) (*material, error)

	val       atomic.Pointer[material]
	nextCheck atomic.Int64 // Unix nanoseconds

	mu      sync.Mutex
	stamps  []stamp // of the files behind val, or of the last rejected attempt
	lastErr error
}

type material struct {
	cert *tls.Certificate
	pool *x509.CertPool
}

// stamp identifies a file's version: the file (device and inode, so a
// file replaced by rename is seen even within one clock tick of the
// file system's timestamps), its modification time and size.
type stamp struct {
	fi os.FileInfo
}

// get returns the current material, checking the files first when
// CheckInterval has passed. Only one caller checks; the others use the
// current material (or wait for the first load).
func (e *fileEntry) get(l *Local) (*material, error) {
	now := l.cfg.Now()
	v := e.val.Load()
	if v != nil && now.UnixNano() < e.nextCheck.Load() {
		return v, nil
	}
	if v != nil {
		if !e.mu.TryLock() {
			return v, nil
		}
	} else {
		e.mu.Lock()
	}
	defer e.mu.Unlock()
	if v = e.val.Load(); v != nil && now.UnixNano() < e.nextCheck.Load() {
		return v, nil // loaded while we waited
	}
	e.check(l)
	e.nextCheck.Store(now.Add(l.cfg.CheckInterval).UnixNano())
	if v = e.val.Load(); v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("%w: secret %q: %v", ErrNotReady, e.name, e.lastErr)
}

// check reloads the files when they changed. Called with mu held.
func (e *fileEntry) check(l *Local) {
	stamps := make([]stamp, len(e.paths))
	for i, p := range e.paths {
		fi, err := os.Stat(p)
		if err != nil {
			e.reject(l, nil, err)
			return
		}
		stamps[i] = stamp{fi}
	}
	if e.lastErr == nil && e.val.Load() != nil && equalStamps(stamps, e.stamps) {
		return
	}
	if e.lastErr != nil && equalStamps(stamps, e.stamps) {
		return // the same invalid files: already reported
	}
	data := make([][]byte, len(e.paths))
	for i, p := range e.paths {
		b, err := readFile(p)
		if err != nil {
			e.reject(l, stamps, err)
			return
		}
		data[i] = b
	}
	m, err := e.parse(e.paths, data)
	if err != nil {
		e.reject(l, stamps, err)
		return
	}
	reload := e.val.Load() != nil
	e.val.Store(m)
	e.stamps, e.lastErr = stamps, nil
	if reload {
		l.log.Info("secret reloaded", "secret", e.name)
	}
}

// reject records a failed load (nil stamps: a file is missing) and logs
// it once per change of the files.
func (e *fileEntry) reject(l *Local, stamps []stamp, err error) {
	if e.lastErr != nil && equalStamps(stamps, e.stamps) && e.lastErr.Error() == err.Error() {
		return
	}
	e.stamps, e.lastErr = stamps, err
	if e.val.Load() != nil {
		l.log.Warn("secret files rejected; keeping the last good material", "secret", e.name, "err", err)
	} else {
		l.log.Warn("secret files not usable", "secret", e.name, "err", err)
	}
}

func equalStamps(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i].fi, b[i].fi
		if x == nil || y == nil {
			if x != y {
				return false
			}
			continue
		}
		if !os.SameFile(x, y) || !x.ModTime().Equal(y.ModTime()) || x.Size() != y.Size() {
			return false
		}
	}
	return true
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	return b, nil
}

// parseKeyPair reads a PEM chain and its private key.
func parseKeyPair(paths []string, data [][]byte) (*material, error) {
	c, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", paths[0], paths[1], err)
	}
	return &material{cert: &c}, nil
}

// parseBundle reads a PEM bundle of at least one certificate.
func parseBundle(paths []string, data [][]byte) (*material, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data[0]; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, fmt.Errorf("%s: data that is not PEM after certificate %d", paths[0], n)
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", paths[0], n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", paths[0])
	}
	return &material{pool: pool}, nil
}
