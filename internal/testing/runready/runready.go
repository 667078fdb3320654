package runready

import (
	"context"
	"testing"
	"time"
)

// Runner is a component with a blocking Run and a readiness signal, such
// as discovery.Server.
type Runner interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
}

// Start runs r until stop (registered as a cleanup too) and waits until it
// is ready; wait bounds both. who prefixes the failures ("" for none).
func Start(t testing.TB, r Runner, wait time.Duration, who string) (stop func()) {
	t.Helper()
	if who != "" {
		who += ": "
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%sRun returned %v after cancel, want nil", who, err)
			}
		case <-time.After(wait):
			t.Errorf("%sRun did not return within %v of cancel", who, wait)
		}
	}
	t.Cleanup(stop)
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("%sRun returned before ready: %v", who, err)
	case <-time.After(wait):
		t.Fatalf("%snot ready after %v", who, wait)
	}
	return stop
}
