package main

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// WakeProbe is what one thread waking another costs on this machine: the
// round trip of one byte between two threads that sleep in read(2) on a
// Unix socket pair, both on one CPU and on two. Every hop of a proxied
// request (client → proxy → proxy → server and back) is such a wake-up,
// so the two figures say which regime a run was in: on a VM whose idle
// vCPUs halt (no guest halt polling), a wake-up across vCPUs costs an
// inter-processor interrupt and the halted vCPU's return, often tens of
// microseconds, against a few on one CPU — then where the scheduler
// places the four processes, not the proxies' own work, is most of the
// added latency.
type WakeProbe struct {
	SameCPUMicros  float64 `json:"sameCpuMicros"`
	CrossCPUMicros float64 `json:"crossCpuMicros,omitempty"` // 0: one CPU allowed
}

// probeWake measures both round trips (n each on one CPU, n/4 across
// two: the slow case) on the first CPUs of the process's affinity mask.
func probeWake(n int) (WakeProbe, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return WakeProbe{}, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 2; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return WakeProbe{}, errors.New("no CPU in the affinity mask")
	}
	var p WakeProbe
	same, err := wakeRoundTrip(cpus[0], cpus[0], n)
	if err != nil {
		return p, fmt.Errorf("same CPU: %w", err)
	}
	p.SameCPUMicros = micros(same)
	if len(cpus) > 1 {
		cross, err := wakeRoundTrip(cpus[0], cpus[1], max(n/4, 1))
		if err != nil {
			return p, fmt.Errorf("across CPUs: %w", err)
		}
		p.CrossCPUMicros = micros(cross)
	}
	return p, nil
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// wakeRoundTrip is the mean of n round trips between a thread on CPU a
// and one on CPU b, each blocking in read(2) until the other writes.
func wakeRoundTrip(a, b, n int) (time.Duration, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	// Both sides run on threads of their own (onCPU never gives a thread
	// back), so no affinity set here reaches the caller's thread or the
	// processes it starts later.
	var elapsed time.Duration
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() {
		errB = onCPU(b, func() error { return pingPong(fds[1], wakeWarmup+n, false) })
		if errB != nil {
			unix.Shutdown(fds[1], unix.SHUT_RDWR) // unblock the initiator
		}
	})
	wg.Go(func() {
		errA = onCPU(a, func() error {
			if err := pingPong(fds[0], wakeWarmup, true); err != nil {
				return err
			}
			start := time.Now()
			err := pingPong(fds[0], n, true)
			elapsed = time.Since(start)
			return err
		})
		if errA != nil {
			unix.Shutdown(fds[0], unix.SHUT_RDWR) // unblock the echo
		}
	})
	wg.Wait()
	if err := errors.Join(errA, errB); err != nil {
		return 0, err
	}
	return elapsed / time.Duration(n), nil
}

// wakeWarmup exchanges precede the timed ones: both threads on their
// CPUs and in the loop.
const wakeWarmup = 50

// onCPU locks the calling goroutine to its thread, binds the thread to
// cpu and runs f. It never unlocks: the thread ends with the goroutine
// (so its affinity never reaches another goroutine), so call it only
// from a goroutine of its own that ends once f has returned.
func onCPU(cpu int, f func() error) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity to CPU %d: %w", cpu, err)
	}
	return f()
}

// pingPong does n exchanges of one byte on fd: the initiator writes then
// reads, the echo reads then writes.
func pingPong(fd, n int, initiator bool) error {
	var buf [1]byte
	for range n {
		if initiator {
			if _, err := unix.Write(fd, buf[:]); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		if m, err := unix.Read(fd, buf[:]); err != nil || m != 1 {
			return fmt.Errorf("read: %d bytes, %v", m, err)
		}
		if !initiator {
			if _, err := unix.Write(fd, buf[:]); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
	return nil
}
