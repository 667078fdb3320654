package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// naivePair is two stock httputil.ReverseProxy processes (this binary,
// re-executed as "proxybench _naive" with GOMAXPROCS=1), with the same TLS leg
// as the nginx pair. The only change from the defaults is the idle pool:
// MaxIdleConnsPerHost 64 like nginx's keepalive 64 (the default of 2 would
// make A open a new TLS connection for most of the 16 concurrent requests).
type naivePair struct{}

func init() { registerPair(naivePair{}) }

func (naivePair) Name() string         { return "naive" }
func (naivePair) Available(*Env) error { return nil }

func (naivePair) Start(ctx context.Context, e *Env, upstream string) (*Instance, error) {
	env := []string{"GOMAXPROCS=1"}
	b, err := startProc(ctx, e, fmt.Sprintf("naive-B-%d", e.next()), e.Self,
		[]string{"_naive", "-listen", "127.0.0.1:0", "-upstream", "http://" + upstream,
			"-cert", e.Certs.CertFile, "-key", e.Certs.KeyFile}, env, true)
	if err != nil {
		return nil, err
	}
	a, err := startProc(ctx, e, fmt.Sprintf("naive-A-%d", e.next()), e.Self,
		[]string{"_naive", "-listen", "127.0.0.1:0", "-upstream", "https://" + b.addr,
			"-ca", e.Certs.CAFile, "-server-name", e.Certs.ServerName}, env, true)
	if err != nil {
		b.stop()
		return nil, err
	}
	return &Instance{
		Addr:    a.addr,
		Proxies: []Proxy{{Name: "A", PID: a.pid()}, {Name: "B", PID: b.pid()}},
		Stop:    func() { a.stop(); b.stop() },
	}, nil
}

// naiveMain is the proxy process: "proxybench _naive -listen ADDR -upstream URL
// [-cert F -key F] [-ca F -server-name N]". It prints "LISTENING host:port".
func naiveMain(args []string) error {
	fs := flag.NewFlagSet("_naive", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "upstream URL (http:// or https://)")
	certFile := fs.String("cert", "", "serve TLS with this certificate")
	keyFile := fs.String("key", "", "key for -cert")
	caFile := fs.String("ca", "", "CA that signs the upstream's certificate")
	serverName := fs.String("server-name", "", "name to verify in the upstream's certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad -upstream %q", *upstream)
	}
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		Protocols:           h1,
	}
	if u.Scheme == "https" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("no certificate in %s", *caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: *serverName, MinVersion: tls.VersionTLS13}
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = tr
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute, Protocols: h1}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	return serveUntilSignal(srv, ln)
}

// serveUntilSignal serves until SIGTERM or SIGINT.
func serveUntilSignal(srv *http.Server, ln net.Listener) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return srv.Close()
	}
}
