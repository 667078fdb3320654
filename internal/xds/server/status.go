package server

import (
	"maps"
	"sort"
	"time"
)

// ClientStatus is the state of one connected stream, for proxy-status.
type ClientStatus struct {
	ProxyID      string
	ConnectionID string
	// Name is the proxy's name (pod.namespace), Type its role; Namespace
	// and ClusterID come from its node metadata.
	Name      string
	Type      string
	Namespace string
	ClusterID string
	// Labels are the proxy's workload labels (a copy); MetricsAddress is
	// where it serves its metrics (node metadata METRICS_ADDRESS, "" if
	// not sent).
	Labels         map[string]string
	MetricsAddress string
	// Version is the proxy's software version: its ISTIO_VERSION metadata,
	// else its node's user agent name and version ("" if it sent neither).
	Version     string
	Delta       bool
	ConnectedAt time.Time
	// Types lists the types the proxy asked for, in push order.
	Types []TypeStatus
}

// TypeStatus is the xDS state of one type on one stream.
type TypeStatus struct {
	TypeURL string
	// SentVersion is the version of the last response: the sotw
	// version_info (a digest of the content), or for delta the snapshot
	// version it was generated from. Empty if nothing was sent.
	SentVersion string
	SentNonce   string
	// AckedVersion and AckedNonce are those of the last ACKed response.
	AckedVersion string
	AckedNonce   string
	// Acked reports whether the last response sent has been ACKed, NACKed
	// whether it has been rejected.
	Acked  bool
	NACKed bool
	// LastNACK is the error of the most recent NACK on this stream, kept
	// after later ACKs; empty if the proxy never rejected this type.
	LastNACK string
}

// Clients returns the status of every connected stream, sorted by proxy ID
// then connection ID.
func (s *Server) Clients() []ClientStatus {
	s.mu.Lock()
	conns := make([]*connection, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	out := make([]ClientStatus, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.status())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ProxyID != out[j].ProxyID {
			return out[i].ProxyID < out[j].ProxyID
		}
		return out[i].ConnectionID < out[j].ConnectionID
	})
	return out
}

func (c *connection) status() ClientStatus {
	st := ClientStatus{ProxyID: c.proxy.ID, ConnectionID: c.id, Name: c.proxy.Name, Type: string(c.proxy.Type),
		Namespace: c.proxy.Namespace, ClusterID: c.proxy.ClusterID, Version: c.agent, Delta: c.delta, ConnectedAt: c.since,
		Labels: maps.Clone(c.proxy.Labels), MetricsAddress: c.proxy.MetricsAddress}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ts := range c.types {
		if ts == nil {
			continue
		}
		t := TypeStatus{
			TypeURL:      typeURLAt(i),
			SentVersion:  ts.version,
			AckedVersion: ts.ackedVersion,
			Acked:        ts.nonce != 0 && ts.ackedNonce == ts.nonce,
			NACKed:       ts.nonce != 0 && ts.nackedNonce == ts.nonce,
			LastNACK:     ts.nack,
		}
		if ts.nonce != 0 {
			t.SentNonce = formatNonce(ts.nonce)
		}
		if ts.ackedNonce != 0 {
			t.AckedNonce = formatNonce(ts.ackedNonce)
		}
		st.Types = append(st.Types, t)
	}
	return st
}
