//go:build linux

package mtls

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"syscall"
	"time"
)

// TLS record and handshake values used by rawHello and its reply.
const (
	recordAlert       = 21
	recordHandshake   = 22
	typeClientHello   = 1
	typeServerHello   = 2
	extSupportedGroup = 10
	extPointFormats   = 11
	extSignatureAlgs  = 13
	extALPN           = 16
)

// rawHello is a ClientHello written byte by byte, for offers crypto/tls
// will not make (SSL 3.0, NULL and export cipher suites).
type rawHello struct {
	recordVersion, version uint16
	suites                 []uint16
	alpn                   []string
	// ecdhe adds the extensions an ECDHE-ECDSA suite needs (groups
	// x25519 and P-256, uncompressed points, ecdsa_secp256r1_sha256).
	ecdhe bool
}

func (h rawHello) bytes() []byte {
	u16 := binary.BigEndian.AppendUint16
	body := u16(nil, h.version)
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	body = append(body, random...)
	body = append(body, 0) // no session ID
	body = u16(body, uint16(2*len(h.suites)))
	for _, s := range h.suites {
		body = u16(body, s)
	}
	body = append(body, 1, 0) // compression methods: null
	var exts []byte
	ext := func(typ uint16, data []byte) {
		exts = u16(exts, typ)
		exts = u16(exts, uint16(len(data)))
		exts = append(exts, data...)
	}
	if h.ecdhe {
		ext(extSupportedGroup, []byte{0, 4, 0x00, 0x1d, 0x00, 0x17})
		ext(extPointFormats, []byte{1, 0})
		ext(extSignatureAlgs, []byte{0, 2, 0x04, 0x03})
	}
	if len(h.alpn) > 0 {
		var list []byte
		for _, p := range h.alpn {
			list = append(append(list, byte(len(p))), p...)
		}
		ext(extALPN, append(u16(nil, uint16(len(list))), list...))
	}
	if len(exts) > 0 {
		body = append(u16(body, uint16(len(exts))), exts...)
	}
	hs := append([]byte{typeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	rec := u16([]byte{recordHandshake}, h.recordVersion)
	rec = u16(rec, uint16(len(hs)))
	return append(rec, hs...)
}

// helloReply is what the server answered a rawHello with.
type helloReply struct {
	serverHello bool   // a ServerHello: the offer was accepted
	alert       int    // the alert description, -1 for none
	closed      string // the connection ended without a record: how
}

func (r helloReply) String() string {
	switch {
	case r.serverHello:
		return "ServerHello"
	case r.alert >= 0:
		return fmt.Sprintf("alert %d", r.alert)
	}
	return "closed (" + r.closed + ")"
}

// sendHello sends h from the outsider to the server's app port and reads
// the first record of the reply.
func (m *mesh) sendHello(h rawHello) (helloReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := m.outsider.ns.DialContext(ctx, "tcp", netip.AddrPortFrom(m.server.ns.Addr, appPort).String())
	if err != nil {
		return helloReply{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(h.bytes()); err != nil {
		return helloReply{}, err
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil {
		if errors.Is(err, io.EOF) || isReset(err) {
			return helloReply{alert: -1, closed: err.Error()}, nil
		}
		return helloReply{}, fmt.Errorf("reading the reply: %w", err)
	}
	payload := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(c, payload); err != nil {
		return helloReply{}, fmt.Errorf("reading a record of type %d: %w", hdr[0], err)
	}
	switch {
	case hdr[0] == recordAlert && len(payload) == 2:
		return helloReply{alert: int(payload[1])}, nil
	case hdr[0] == recordHandshake && len(payload) > 0 && payload[0] == typeServerHello:
		return helloReply{serverHello: true, alert: -1}, nil
	}
	return helloReply{}, fmt.Errorf("unexpected reply record % x", append(hdr, payload...))
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
