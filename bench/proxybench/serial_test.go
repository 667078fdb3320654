package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSerialRelay sends keep-alive requests through serialConn to an HTTP
// server: every response must arrive whole and in order on the one
// client connection, and a chunked message ends the relay.
func TestSerialRelay(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write([]byte("a"))
			w.(http.Flusher).Flush()
			return
		}
		w.Write([]byte(strings.Repeat(r.URL.Path, 300))) // under net/http's 2 KiB: Content-Length
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serialConn(c, func() (net.Conn, error) { return net.Dial("tcp", srv.Listener.Addr().String()) })
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, p := range []string{"/a", "/bb", "/ccc", "/chunked"} {
		req, _ := http.NewRequest("GET", "http://x"+p, nil)
		if err := req.Write(c); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if p == "/chunked" {
			if err == nil {
				t.Fatalf("chunked response relayed: %v", resp.Status)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != strings.Repeat(p, 300) {
			t.Fatalf("%s: body %d bytes, %v", p, len(body), err)
		}
	}
}
