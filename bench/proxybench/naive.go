package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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
	leg := addLegFlags(fs)
	upstream := fs.String("upstream", "", "upstream URL (http:// or https://)")
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
		if tr.TLSClientConfig, err = leg.clientTLS(); err != nil {
			return err
		}
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = tr
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute, Protocols: h1}
	ln, err := leg.listener([]string{"http/1.1"})
	if err != nil {
		return err
	}
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
