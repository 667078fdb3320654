package listener

import (
	"testing"
	"time"
)

// TestManagerDefaults checks the listener rows of the "Limits" table in
// docs/data-plane.md: 16384 connections per listener socket (C8) and the
// 15 s listener filter / TLS ClientHello limit (C6) when Config leaves
// them 0, none when negative. The values are written as the document
// states them, not with the constants.
func TestManagerDefaults(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		wantConns int64 // 0: no limit
		wantHS    time.Duration
	}{
		{"unset", Config{}, 16384, 15 * time.Second},
		{"negative: none", Config{MaxConnections: -1, HandshakeTimeout: -1}, 0, 0},
		{"explicit", Config{MaxConnections: 3, HandshakeTimeout: 2 * time.Second}, 3, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Filters = Registry{}
			m, err := New(c.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if m.maxConns != c.wantConns || m.hsTime != c.wantHS {
				t.Errorf("max connections %d, handshake timeout %v; want %d, %v", m.maxConns, m.hsTime, c.wantConns, c.wantHS)
			}
		})
	}
}
