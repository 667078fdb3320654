package kubetest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
)

// TB is the part of testing.TB the harness uses; testing.TB satisfies it,
// and Standalone provides it outside tests.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
	TempDir() string
}

// Standalone starts etcd and kube-apiserver outside a test (for bench/
// commands), with data under dir, and returns the cluster and a function
// that stops both processes. logf receives the processes' log tails on
// failure. CRDs are installed when crds is set.
func Standalone(dir string, crds bool, logf func(format string, args ...any)) (c *Cluster, stop func(), err error) {
	s := &standalone{dir: dir, logf: logf}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			s.stop()
			c, stop, err = nil, nil, errors.New(string(f))
		}
	}()
	c = start(s)
	if crds {
		installCRDs(s, c)
	}
	return c, s.stop, nil
}

// fatal is the panic value Fatalf raises and Standalone recovers.
type fatal string

type standalone struct {
	dir  string
	logf func(string, ...any)

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	n        int
}

func (s *standalone) Helper() {}

func (s *standalone) Fatalf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	panic(fatal(fmt.Sprintf(format, args...)))
}

func (s *standalone) Logf(format string, args ...any) { s.logf(format, args...) }

func (s *standalone) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *standalone) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *standalone) TempDir() string {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	d, err := os.MkdirTemp(s.dir, fmt.Sprintf("kubetest%d-", n))
	if err != nil {
		s.Fatalf("kubetest: %v", err)
	}
	return d
}

// stop runs the cleanups, last registered first.
func (s *standalone) stop() {
	s.mu.Lock()
	fs := slices.Clone(s.cleanups)
	s.cleanups = nil
	s.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}
