package xdsclient_test

import (
	"math/rand/v2"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
)

func TestBackoffBounds(t *testing.T) {
	tests := []struct {
		name    string
		b       xdsclient.Backoff
		attempt int
		ceiling time.Duration
	}{
		{"defaults, first retry", xdsclient.Backoff{}, 0, 500 * time.Millisecond},
		{"defaults, second retry", xdsclient.Backoff{}, 1, time.Second},
		{"defaults, sixth retry", xdsclient.Backoff{}, 5, 16 * time.Second},
		{"defaults, capped", xdsclient.Backoff{}, 6, 30 * time.Second},
		{"defaults, far beyond the cap", xdsclient.Backoff{}, 10000, 30 * time.Second},
		{"custom", xdsclient.Backoff{Base: 10 * time.Millisecond, Max: 35 * time.Millisecond}, 2, 35 * time.Millisecond},
		{"max below base", xdsclient.Backoff{Base: time.Second, Max: time.Millisecond}, 3, time.Second},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.Ceiling(tc.attempt); got != tc.ceiling {
				t.Fatalf("Ceiling(%d) = %v, want %v", tc.attempt, got, tc.ceiling)
			}
			if got := tc.b.Delay(tc.attempt, 0); got != 0 {
				t.Errorf("Delay(u=0) = %v, want 0", got)
			}
			if got := tc.b.Delay(tc.attempt, 0.5); got != tc.ceiling/2 {
				t.Errorf("Delay(u=0.5) = %v, want %v", got, tc.ceiling/2)
			}
			if got := tc.b.Delay(tc.attempt, 0.9999999); got >= tc.ceiling || got < tc.ceiling*99/100 {
				t.Errorf("Delay(u→1) = %v, want just under %v", got, tc.ceiling)
			}
			for range 1000 {
				if got := tc.b.Delay(tc.attempt, rng.Float64()); got < 0 || got >= tc.ceiling {
					t.Fatalf("Delay = %v outside [0, %v)", got, tc.ceiling)
				}
			}
			for _, u := range []float64{-1, 1, 2} {
				if got := tc.b.Delay(tc.attempt, u); got < 0 || got >= tc.ceiling {
					t.Errorf("Delay(u=%v) = %v outside [0, %v)", u, got, tc.ceiling)
				}
			}
		})
	}
}

func TestNewChecksConfig(t *testing.T) {
	node := &corev3.Node{Id: "sidecar~10.0.0.1~a.default~default.svc.cluster.local"}
	consumer := xdsclient.ConsumerFunc(nil)
	tests := []struct {
		name string
		cfg  xdsclient.Config
		ok   bool
	}{
		{"complete", xdsclient.Config{Server: "127.0.0.1:15010", Node: node, Consumer: consumer}, true},
		{"sotw", xdsclient.Config{Server: "127.0.0.1:15010", Node: node, Consumer: consumer, Protocol: xdsclient.SotW}, true},
		{"no server", xdsclient.Config{Node: node, Consumer: consumer}, false},
		{"no node", xdsclient.Config{Server: "x:1", Consumer: consumer}, false},
		{"node without id", xdsclient.Config{Server: "x:1", Node: &corev3.Node{}, Consumer: consumer}, false},
		{"no consumer", xdsclient.Config{Server: "x:1", Node: node}, false},
		{"bad protocol", xdsclient.Config{Server: "x:1", Node: node, Consumer: consumer, Protocol: 7}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := xdsclient.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if err == nil && c.Status().Connected {
				t.Error("connected before Run")
			}
		})
	}
}
