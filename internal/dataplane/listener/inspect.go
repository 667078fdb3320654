package listener

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"time"
)

// Why a connection is closed during listener filtering.
var (
	// errFiltersTimeout: listener_filters_timeout elapsed (the connection
	// goes on to chain matching if continue_on_listener_filters_timeout).
	errFiltersTimeout = errors.New("listener filters timed out")
	// errHandshakeTimeout: the manager's inspection limit elapsed
	// (SECURITY C6); always closes.
	errHandshakeTimeout = errors.New("inspection timed out")
	// errRemoteClosed: the peer closed before the filters were done
	// (Envoy's downstream_listener_filter_remote_close).
	errRemoteClosed = errors.New("peer closed the connection during inspection")
	// errHelloTooLarge: the ClientHello needs more than max_client_hello_size bytes.
	errHelloTooLarge = errors.New("TLS ClientHello too large")
	// errHelloInvalid: close_connection_on_client_hello_parsing_errors and
	// the first bytes are not a ClientHello.
	errHelloInvalid = errors.New("TLS ClientHello could not be parsed")
	// errRequestLineTooLong: no HTTP decision within maxHTTPInspect bytes.
	errRequestLineTooLong = errors.New("HTTP request line too long to inspect")
	// errBufferFull: a filter asked for more than it may read (a bug).
	errBufferFull = errors.New("inspection buffer full")
)

// connState is one accepted connection while listener filters run: the
// bytes they read (replayed to the handler later) and the socket
// properties they set. It is owned by the connection's goroutine.
type connState struct {
	raw      net.Conn
	buf      []byte
	accepted time.Time
	// hardDeadline ends inspection whatever the listener says (C6); zero
	// for none.
	hardDeadline time.Time
	readDeadline time.Time // the deadline currently set on raw

	source, local, dest netip.AddrPort
	restored            bool
	// transparent: accepted on an IP_TRANSPARENT socket, where the local
	// address is the original destination (TPROXY).
	transparent bool
	sni         string
	alpn        []string
	transport   string
}

func newConnState(raw net.Conn, now time.Time, handshakeTimeout time.Duration, transparent bool) *connState {
	s := &connState{
		raw:         raw,
		accepted:    now,
		source:      addrPortOf(raw.RemoteAddr()),
		local:       addrPortOf(raw.LocalAddr()),
		transparent: transparent,
	}
	s.dest = s.local
	if handshakeTimeout > 0 {
		s.hardDeadline = now.Add(handshakeTimeout)
	}
	return s
}

// fill reads once more from the connection (whatever is available, up to
// limit bytes buffered in all) so that the caller can look again; Envoy's
// listener filters likewise re-examine the peeked bytes on every read
// event. filtersDeadline is the listener's listener_filters_timeout
// deadline (zero for none).
func (s *connState) fill(limit int, filtersDeadline time.Time) error {
	if len(s.buf) >= limit {
		return errBufferFull
	}
	if cap(s.buf) < limit {
		grown := make([]byte, len(s.buf), limit)
		copy(grown, s.buf)
		s.buf = grown
	}
	deadline, hard := s.hardDeadline, true
	if !filtersDeadline.IsZero() && (deadline.IsZero() || filtersDeadline.Before(deadline)) {
		deadline, hard = filtersDeadline, false
	}
	if !deadline.Equal(s.readDeadline) {
		if err := s.raw.SetReadDeadline(deadline); err != nil {
			return err
		}
		s.readDeadline = deadline
	}
	for {
		n, err := s.raw.Read(s.buf[len(s.buf):limit])
		s.buf = s.buf[:len(s.buf)+n]
		if n > 0 {
			return nil // an error comes back on the next read
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if hard {
				return errHandshakeTimeout
			}
			return errFiltersTimeout
		case errors.Is(err, io.EOF):
			return errRemoteClosed
		default:
			return err
		}
	}
}

// clearDeadline removes the read deadline inspection set.
func (s *connState) clearDeadline() error {
	if s.readDeadline.IsZero() {
		return nil
	}
	s.readDeadline = time.Time{}
	return s.raw.SetReadDeadline(time.Time{})
}

// originalDstFunc recovers a redirected connection's original destination
// (capture.OriginalDst in production).
type originalDstFunc func(*net.TCPConn) (netip.AddrPort, error)

// runFilters runs l's listener filters on s in order, each unless its
// filter_disabled predicate matches the destination port. A nil error
// means go on to hand-off and chain matching.
func (l *Listener) runFilters(s *connState, origDst originalDstFunc, now time.Time) error {
	var deadline time.Time
	if l.filtersTimeout > 0 {
		deadline = now.Add(l.filtersTimeout)
	}
	for i := range l.filters {
		f := &l.filters[i]
		if f.disabled != nil && f.disabled.matches(s.dest.Port()) {
			continue
		}
		err := f.run(s, origDst, deadline)
		if errors.Is(err, errFiltersTimeout) && l.continueOnTimeout {
			// Envoy goes straight to the connection with what it knows.
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *listenerFilter) run(s *connState, origDst originalDstFunc, deadline time.Time) error {
	switch f.kind {
	case kindOriginalDst:
		restoreOriginalDst(s, origDst)
		return nil
	case kindTLSInspector:
		return f.inspectTLS(s, deadline)
	case kindHTTPInspector:
		return inspectHTTP(s, deadline)
	}
	return nil
}

// restoreOriginalDst is the original_dst filter: the kernel's original
// destination (SO_ORIGINAL_DST, set by REDIRECT). Without one, a
// connection accepted on a transparent socket (TPROXY, no NAT) has its
// original destination as local address, which counts as restored; any
// other keeps its local address, unrestored, as in Envoy.
func restoreOriginalDst(s *connState, origDst originalDstFunc) {
	if tc, ok := s.raw.(*net.TCPConn); ok && origDst != nil {
		if dst, err := origDst(tc); err == nil && dst.IsValid() {
			s.dest = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
			s.restored = true
			return
		}
	}
	if s.transparent && s.local.IsValid() {
		s.dest = s.local
		s.restored = true
	}
}

func (f *listenerFilter) inspectTLS(s *connState, deadline time.Time) error {
	for {
		h, st, need := parseClientHello(s.buf, f.maxClientHello)
		switch st {
		case helloTLS:
			s.transport = TransportTLS
			s.sni = h.sni
			if h.alpn != nil {
				s.alpn = h.alpn
			}
			return nil
		case helloNotTLS:
			if f.closeOnHelloError {
				return errHelloInvalid
			}
			return nil
		case helloTooLarge:
			return errHelloTooLarge
		}
		for len(s.buf) < need {
			if err := s.fill(f.maxClientHello, deadline); err != nil {
				return err
			}
		}
	}
}

func inspectHTTP(s *connState, deadline time.Time) error {
	if s.transport != "" && s.transport != TransportRawBuffer {
		return nil // HTTP inside TLS is not inspectable
	}
	for {
		proto, st := sniffHTTPProtocol(s.buf)
		switch st {
		case sniffHTTP:
			s.alpn = []string{proto}
			return nil
		case sniffNotHTTP:
			return nil
		}
		if len(s.buf) >= maxHTTPInspect {
			return errRequestLineTooLong
		}
		if err := s.fill(maxHTTPInspect, deadline); err != nil {
			return err
		}
	}
}
