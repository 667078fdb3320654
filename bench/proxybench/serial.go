package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// serialConn relays HTTP/1.1 messages between c and a new upstream
// connection on one goroutine: a request from c, written whole upstream,
// then the response, written whole to c, until either side ends or sends
// a message it cannot frame.
func serialConn(c net.Conn, dial func() (net.Conn, error)) {
	defer c.Close()
	u, err := dial()
	if err != nil {
		return
	}
	defer u.Close()
	down, up := bufio.NewReaderSize(c, 4<<10), bufio.NewReaderSize(u, 4<<10)
	var msg []byte
	for {
		if msg, err = readMessage(down, msg[:0]); err != nil {
			return
		}
		if _, err = u.Write(msg); err != nil {
			return
		}
		if msg, err = readMessage(up, msg[:0]); err != nil {
			return
		}
		if _, err = c.Write(msg); err != nil {
			return
		}
	}
}

// errUnframed is a message whose end readMessage cannot find.
var errUnframed = errors.New("message body framed other than by Content-Length")

// readMessage appends one HTTP/1.1 message from r to buf: the head up to
// its empty line, then as many body bytes as its Content-Length says
// (none without one). Chunked bodies are errUnframed.
func readMessage(r *bufio.Reader, buf []byte) ([]byte, error) {
	body := 0
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		buf = append(buf, line...)
		field := bytes.TrimRight(line, "\r\n")
		if len(field) == 0 {
			break
		}
		name, value, ok := bytes.Cut(field, []byte(":"))
		if !ok {
			continue // the start line
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if body, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil || body < 0 {
				return buf, fmt.Errorf("content-length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return buf, errUnframed
		}
	}
	n := len(buf)
	buf = append(buf, make([]byte, body)...)
	_, err := io.ReadFull(r, buf[n:])
	return buf, err
}
