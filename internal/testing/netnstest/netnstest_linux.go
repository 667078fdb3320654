package netnstest

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Enter locks the calling goroutine to its OS thread and moves the thread
// into network namespace name. The goroutine must not unlock the thread:
// let it end instead.
func Enter(name string) error {
	runtime.LockOSThread()
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		return fmt.Errorf("opening netns %s: %w", name, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering netns %s: %w", name, err)
	}
	return nil
}

// Do runs fn on a fresh OS thread inside network namespace name and
// returns its error (or the error entering the namespace).
func Do(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		if err := Enter(name); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
