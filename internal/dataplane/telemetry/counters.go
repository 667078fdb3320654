package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// CounterFunc adds a counter to the registry whose value f returns at
// scrape time: the proxy's own counters kept elsewhere (access log lines
// and spans dropped, export failures).
func (m *Metrics) CounterFunc(name, help string, f func() uint64) error {
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	if err := m.registry.Register(c); err != nil {
		return fmt.Errorf("registering %s: %w", name, err)
	}
	return nil
}
