package http

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"net"
	nethttp "net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// checkRequest applies the connection manager's request limits. It returns
// the status of the local reply and its details, or 0.
func (m *Manager) checkRequest(r *nethttp.Request) (int, string) {
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 && !m.cfg.hosts.acceptHTTP10 {
		return nethttp.StatusUpgradeRequired, "low_version"
	}
	if r.Host == "" {
		if r.ProtoMajor == 1 && r.ProtoMinor == 0 && m.cfg.hosts.defaultHostHTTP10 != "" {
			r.Host = m.cfg.hosts.defaultHostHTTP10
		} else {
			return nethttp.StatusBadRequest, "missing_host_header"
		}
	}
	if r.Method == nethttp.MethodConnect {
		return nethttp.StatusForbidden, "upgrade_failed"
	}
	n := 1 // :authority / Host
	for _, vs := range r.Header {
		n += len(vs)
	}
	if n > m.cfg.limits.maxHeadersCount {
		if r.ProtoMajor == 1 {
			m.count(StatProtocolError)
		} else {
			m.count(StatHeaderOverflow)
		}
		return nethttp.StatusRequestHeaderFieldsTooLarge, "too_many_headers"
	}
	if m.cfg.limits.underscores == corev3.HttpProtocolOptions_REJECT_REQUEST {
		for k := range r.Header {
			if strings.Contains(k, "_") {
				if r.ProtoMajor == 1 {
					m.count(StatHTTP1Underscores)
				} else {
					m.count(StatHTTP2Underscores)
				}
				return nethttp.StatusBadRequest, "unexpected_underscore"
			}
		}
	}
	return 0, ""
}

// sanitize removes what must not travel upstream, first, before any
// filter or route header mutation runs (STYLE: hooks after sanitising):
// hop-by-hop headers and those the Connection header nominates (except
// the proxy's own, B9), te other than "trailers", h2c upgrade requests
// (B7: served as plain requests), headers with underscores under
// DROP_HEADER, and, from a downstream that is not an authenticated mesh
// peer, the mesh-internal headers (B1): x-envoy-*, x-trellis-*, and
// x-forwarded-client-cert unless forward_client_cert_details forwards it.
// It returns the upgrade type asked for ("" for none).
func (m *Manager) sanitize(r *nethttp.Request, trusted bool) string {
	h := r.Header
	upgrade := ""
	connUpgrade := false
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			tok = textproto.TrimString(tok)
			switch {
			case tok == "":
			case strings.EqualFold(tok, "upgrade"):
				connUpgrade = true
			case strings.EqualFold(tok, "close"), strings.EqualFold(tok, "keep-alive"):
			case proxyOwned(tok):
				// The client cannot make the proxy drop its own headers.
			default:
				h.Del(tok)
			}
		}
	}
	var upgrades []string
	if connUpgrade && r.ProtoMajor == 1 {
		for _, v := range h["Upgrade"] {
			for _, tok := range strings.Split(v, ",") {
				tok = textproto.TrimString(tok)
				if tok != "" && !strings.EqualFold(tok, "h2c") {
					upgrades = append(upgrades, tok)
				}
			}
		}
	}
	// One pass over the fields (fewer than the names to look up).
	dropUnderscores := m.cfg.limits.underscores == corev3.HttpProtocolOptions_DROP_HEADER
	dropXFCC := !m.forwardsClientCert(trusted)
	for k, vs := range h {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Http2-Settings":
			delete(h, k) // hop-by-hop (RFC 9110 7.6.1)
			continue
		case "Te":
			// Kept when it is "trailers", for gRPC.
			if len(vs) == 1 && strings.EqualFold(textproto.TrimString(vs[0]), "trailers") {
				h[k] = []string{"trailers"}
			} else {
				delete(h, k)
			}
			continue
		case "X-Forwarded-Client-Cert":
			if dropXFCC {
				delete(h, k)
				continue
			}
		}
		switch {
		case dropUnderscores && strings.Contains(k, "_"):
			delete(h, k)
		case trusted:
		case hasPrefixFold(k, "x-envoy-"), hasPrefixFold(k, "x-trellis-"):
			delete(h, k)
		}
	}
	if len(upgrades) > 0 {
		upgrade = strings.ToLower(upgrades[0])
		h["Upgrade"] = []string{strings.Join(upgrades, ", ")}
	}
	return upgrade
}

// proxyOwned reports headers the proxy sets or vouches for, which a
// Connection header may not remove.
func proxyOwned(name string) bool {
	return hasPrefixFold(name, "x-forwarded-") || hasPrefixFold(name, "x-envoy-") || hasPrefixFold(name, "x-trellis-") ||
		strings.EqualFold(name, "x-request-id") || strings.EqualFold(name, "forwarded") || strings.EqualFold(name, "via")
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case; prefix is lower
// case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// forwardsClientCert reports whether x-forwarded-client-cert is passed on:
// only from an authenticated mesh peer and only in the forwarding modes
// (setClientCert then appends the peer's entry), or always under
// ALWAYS_FORWARD_ONLY.
func (m *Manager) forwardsClientCert(trusted bool) bool {
	switch m.cfg.fwd.clientCert {
	case hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		return true
	case hcmv3.HttpConnectionManager_FORWARD_ONLY, hcmv3.HttpConnectionManager_APPEND_FORWARD:
		return trusted
	}
	return false
}

// setClientCert adds the mutual TLS peer's entry to
// x-forwarded-client-cert as Envoy's mutateXfccRequestHeader does:
// appended to what a trusted peer forwarded under APPEND_FORWARD, alone
// under SANITIZE_SET, nothing otherwise or without a client certificate.
// The entry is By=<the proxy's URI SAN>;Hash=<SHA-256 of the peer's
// certificate, hex> and then, as set_current_client_cert_details asks,
// Cert="<URL-encoded PEM>", Chain="<URL-encoded PEM chain>",
// Subject="<subject>", URI=<the peer's first URI SAN> and DNS=<each DNS
// SAN>: Istio's inbound sidecars ask for Subject, URI and DNS, giving
// By=spiffe://td/ns/a/sa/server;Hash=…;Subject="";URI=spiffe://td/ns/b/sa/client.
func (m *Manager) setClientCert(x *exchange, h nethttp.Header, ts *tls.ConnectionState) {
	mode := m.cfg.fwd.clientCert
	if mode != hcmv3.HttpConnectionManager_APPEND_FORWARD && mode != hcmv3.HttpConnectionManager_SANITIZE_SET {
		return
	}
	if ts == nil || len(ts.PeerCertificates) == 0 {
		return
	}
	entry := m.clientCertEntryConn(x.cs, ts.PeerCertificates)
	if old := h["X-Forwarded-Client-Cert"]; mode == hcmv3.HttpConnectionManager_APPEND_FORWARD && len(old) > 0 {
		entry = strings.Join(old, ",") + "," + entry
	}
	x.setHeader(h, "X-Forwarded-Client-Cert", entry)
}

// connXFCC is a connection's x-forwarded-client-cert element, made by m.
type connXFCC struct {
	m     *Manager
	entry string
}

// clientCertEntryConn is the peer's element made once per connection (a
// connection's peer certificate does not change; comparing its bytes per
// request cost more than the rest of the header), by this Manager (a
// listener update may bring other certificate details).
func (m *Manager) clientCertEntryConn(cs *connState, chain []*x509.Certificate) string {
	if cs == nil {
		return m.clientCertEntryCached(chain)
	}
	if c := cs.xfcc.Load(); c != nil && c.m == m {
		return c.entry
	}
	e := m.clientCertEntryCached(chain)
	cs.xfcc.Store(&connXFCC{m: m, entry: e})
	return e
}

// xfccEntry is the last x-forwarded-client-cert element made, by the
// peer certificate it describes: connections from the same peer (most of
// an inbound sidecar's) reuse it instead of hashing and formatting per
// request.
type xfccEntry struct {
	raw   []byte
	entry string
}

// clientCertEntryCached is clientCertEntry through the Manager's
// one-entry cache (not used when the entry includes the chain).
func (m *Manager) clientCertEntryCached(chain []*x509.Certificate) string {
	d := m.cfg.fwd.certDetails
	if d.GetChain() {
		return clientCertEntry(m.cfg.localIdentity, chain, d)
	}
	leaf := chain[0].Raw
	if c := m.xfcc.Load(); c != nil && bytes.Equal(c.raw, leaf) {
		return c.entry
	}
	e := clientCertEntry(m.cfg.localIdentity, chain, d)
	m.xfcc.Store(&xfccEntry{raw: leaf, entry: e})
	return e
}

// clientCertEntry formats one x-forwarded-client-cert element.
func clientCertEntry(by string, chain []*x509.Certificate, d *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) string {
	leaf := chain[0]
	var b strings.Builder
	if by != "" {
		b.WriteString("By=")
		b.WriteString(by)
		b.WriteByte(';')
	}
	sum := sha256.Sum256(leaf.Raw)
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	if d.GetCert() {
		b.WriteString(`;Cert="`)
		b.WriteString(url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))))
		b.WriteByte('"')
	}
	if d.GetChain() {
		var all []byte
		for _, c := range chain {
			all = append(all, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		b.WriteString(`;Chain="`)
		b.WriteString(url.QueryEscape(string(all)))
		b.WriteByte('"')
	}
	if d.GetSubject().GetValue() {
		b.WriteString(`;Subject="`)
		b.WriteString(strings.ReplaceAll(leaf.Subject.String(), `"`, `\"`))
		b.WriteByte('"')
	}
	if d.GetUri() {
		b.WriteString(";URI=")
		if len(leaf.URIs) > 0 {
			b.WriteString(leaf.URIs[0].String())
		}
	}
	if d.GetDns() {
		for _, n := range leaf.DNSNames {
			b.WriteString(";DNS=")
			b.WriteString(n)
		}
	}
	return b.String()
}

// proxyHeaders sets x-forwarded-for, x-forwarded-proto, x-request-id and
// via as Envoy's ConnectionManagerUtility::mutateRequestHeaders, and
// returns the trusted client address.
//
// use_remote_address: the remote address is appended to x-forwarded-for
// (unless skip_xff_append) and is the client address, or, with
// xff_num_trusted_hops N, the N-th address from the right of the received
// x-forwarded-for; x-forwarded-proto is set to the connection's scheme.
// Otherwise x-forwarded-for is left alone, the client address is the
// (N+1)-th from its right (else the remote address), and
// x-forwarded-proto is set only when absent. x-request-id is generated
// when absent, and replaced on edge requests unless
// preserve_external_request_id.
func (m *Manager) proxyHeaders(x *exchange, r *nethttp.Request, source netip.AddrPort, scheme string) (client, requestID string) {
	h := r.Header
	remote := x.remote // the connection's, made once
	if remote == "" && source.IsValid() {
		remote = source.Addr().String()
	}
	xff := xffList(h["X-Forwarded-For"])
	hops := m.cfg.fwd.xffTrustedHops
	if m.cfg.fwd.useRemoteAddress {
		client = remote
		if hops > 0 && len(xff) >= hops {
			client = xff[len(xff)-hops]
		}
		if remote != "" && !m.cfg.fwd.skipXFFAppend {
			if v := h1wire.Get(h, "X-Forwarded-For"); v != "" && len(h["X-Forwarded-For"]) == 1 {
				x.setHeader(h, "X-Forwarded-For", v+","+remote)
			} else if len(xff) > 0 {
				x.setHeader(h, "X-Forwarded-For", strings.Join(append(xff, remote), ","))
			} else {
				x.setHeader(h, "X-Forwarded-For", remote)
			}
		}
		x.setHeader(h, "X-Forwarded-Proto", scheme)
	} else {
		client = remote
		if len(xff) > hops {
			client = xff[len(xff)-1-hops]
		}
		if h1wire.Get(h, "X-Forwarded-Proto") == "" {
			x.setHeader(h, "X-Forwarded-Proto", scheme)
		}
	}
	requestID = h1wire.Get(h, "X-Request-Id")
	if m.cfg.fwd.generateRequestID && (requestID == "" || (m.cfg.fwd.useRemoteAddress && !m.cfg.fwd.preserveExternalID)) {
		requestID = m.uuid()
		x.setHeader(h, "X-Request-Id", requestID)
	}
	if m.cfg.fwd.via != "" {
		h.Add("Via", m.cfg.fwd.via)
	}
	return client, requestID
}

// xffList splits x-forwarded-for values into trimmed addresses.
func xffList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, a := range strings.Split(v, ",") {
			if a = textproto.TrimString(a); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// uuid returns a random (version 4) UUID drawn from the manager's random
// source: bytes 0–7 from the first draw and 8–15 from the second (least
// significant first), as lower-case hex in the 8-4-4-4-12 form.
func (m *Manager) uuid() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], m.random())
	binary.LittleEndian.PutUint64(b[8:], m.random())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	out := [36]byte{8: '-', 13: '-', 18: '-', 23: '-'}
	for i, x := range b {
		j := uuidHexAt[i]
		out[j], out[j+1] = hexDigits[x>>4], hexDigits[x&0x0f]
	}
	return string(out[:])
}

// uuidHexAt is where each byte's two hex digits go in a UUID's text.
const uuidHexAt = "\x00\x02\x04\x06\x09\x0b\x0e\x10\x13\x15\x18\x1a\x1c\x1e\x20\x22"

const hexDigits = "0123456789abcdef"

// authority normalises the request authority before routing and
// forwarding: strip_trailing_host_dot, strip_any_host_port and
// strip_matching_host_port (the port of the address the connection
// arrived on).
func (m *Manager) authority(host string, local netip.AddrPort) string {
	hostPart, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		if strings.HasPrefix(host, "[") {
			hostPart, port = "["+h+"]", p
		} else {
			hostPart, port = h, p
		}
	}
	if m.cfg.hosts.stripTrailingDot {
		hostPart = strings.TrimSuffix(hostPart, ".")
	}
	switch {
	case port == "":
	case m.cfg.hosts.stripAnyPort:
		port = ""
	case m.cfg.hosts.stripMatchingPort && local.IsValid() && port == strconv.Itoa(int(local.Port())):
		port = ""
	}
	if port == "" {
		return hostPart
	}
	if len(host) == len(hostPart)+1+len(port) && strings.HasPrefix(host, hostPart) &&
		host[len(hostPart)] == ':' && strings.HasSuffix(host, port) {
		return host // unchanged: no copy
	}
	return hostPart + ":" + port
}

// serverHeader applies server_header_transformation to a response.
func (m *Manager) serverHeader(_ int, h nethttp.Header) {
	switch m.cfg.server.transform {
	case hcmv3.HttpConnectionManager_PASS_THROUGH:
	case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
		if h1wire.Get(h, "Server") == "" {
			h["Server"] = m.cfg.server.values()
		}
	default:
		h["Server"] = m.cfg.server.values()
	}
}
