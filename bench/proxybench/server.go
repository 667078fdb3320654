package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"fortio.org/fortio/fhttp"
)

// serverMain is the echo server process: "proxybench _server -listen ADDR".
// It serves fortio's echo handler (fhttp.EchoHandler, what `fortio server`
// serves under /echo) with net/http on HTTP/1.1 only; the harness requests
// /echo?size=1024, which answers 1,024 bytes of fortio's payload. It prints
// "LISTENING host:port".
//
// fhttp.HTTPServerWithHandler is not used: it wraps the handler in h2c and
// exits the process on a listener error, and this one must bind 127.0.0.1.
func serverMain(args []string) error {
	fs := flag.NewFlagSet("_server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", fhttp.EchoHandler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute, Protocols: h1}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	return serveUntilSignal(srv, ln)
}
