package xdsclient

import "time"

// Metrics receives events for telemetry. Methods are called from Run's
// goroutine and must not block. A nil Config.Metrics records nothing.
type Metrics interface {
	// OnResponse is called for every response received, before it is
	// decoded, with the number of resources it carries.
	OnResponse(typeURL string, resources int)
	// OnNACK is called when a response is rejected, with the error detail
	// sent to the server.
	OnNACK(typeURL string, detail string)
	// OnReconnect is called when the stream ended with cause and a new one
	// will be opened after delay; attempt counts retries since the last
	// stream that lived long enough to reset the back-off (1-based).
	OnReconnect(attempt int, delay time.Duration, cause error)
}

// nopMetrics is the Metrics of a Config without one.
type nopMetrics struct{}

func (nopMetrics) OnResponse(string, int)                {}
func (nopMetrics) OnNACK(string, string)                 {}
func (nopMetrics) OnReconnect(int, time.Duration, error) {}
