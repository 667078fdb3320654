package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
)

// legFlags are the flags of the Go reference proxies (_naive, _relay) for
// the pairs' TLS 1.3 leg: B serves it (-cert, -key), A dials it (-ca,
// -server-name).
type legFlags struct {
	listen, certFile, keyFile, caFile, serverName *string
}

func addLegFlags(fs *flag.FlagSet) legFlags {
	return legFlags{
		listen:     fs.String("listen", "127.0.0.1:0", "listen address"),
		certFile:   fs.String("cert", "", "serve TLS with this certificate"),
		keyFile:    fs.String("key", "", "key for -cert"),
		caFile:     fs.String("ca", "", "CA that signs the upstream's certificate (dial it over TLS)"),
		serverName: fs.String("server-name", "", "name to verify in the upstream's certificate"),
	}
}

// clientTLS is the configuration to dial the upstream with, nil without -ca.
func (l legFlags) clientTLS() (*tls.Config, error) {
	if *l.caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(*l.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", *l.caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: *l.serverName, MinVersion: tls.VersionTLS13}, nil
}

// listener listens on -listen, serving TLS (with nextProtos) when -cert
// is set, and prints "LISTENING host:port".
func (l legFlags) listener(nextProtos []string) (net.Listener, error) {
	ln, err := net.Listen("tcp", *l.listen)
	if err != nil {
		return nil, err
	}
	cfg, err := l.serverTLS()
	if err != nil {
		ln.Close()
		return nil, err
	}
	if cfg != nil {
		cfg.NextProtos = nextProtos
		ln = tls.NewListener(ln, cfg)
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	return ln, nil
}

// serverTLS is the configuration to serve TLS with, nil without -cert.
func (l legFlags) serverTLS() (*tls.Config, error) {
	if *l.certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(*l.certFile, *l.keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

// relaySetup is what a relay process (_relay, _erelay) takes from its
// flags: its listener, its upstream and each side's TLS (nil: plain).
type relaySetup struct {
	ln             net.Listener
	upstream       string
	server, client *tls.Config
}

// parseRelay parses a relay's flags — the leg's, -upstream, and any the
// caller added to fs — listens, and prints "LISTENING host:port".
func parseRelay(fs *flag.FlagSet, args []string) (relaySetup, error) {
	leg := addLegFlags(fs)
	upstream := fs.String("upstream", "", "upstream host:port")
	if err := fs.Parse(args); err != nil {
		return relaySetup{}, err
	}
	if *upstream == "" {
		return relaySetup{}, errors.New("-upstream is required")
	}
	r := relaySetup{upstream: *upstream}
	var err error
	if r.client, err = leg.clientTLS(); err != nil {
		return relaySetup{}, err
	}
	if r.server, err = leg.serverTLS(); err != nil {
		return relaySetup{}, err
	}
	if r.ln, err = net.Listen("tcp", *leg.listen); err != nil {
		return relaySetup{}, err
	}
	fmt.Printf("LISTENING %s\n", r.ln.Addr())
	return r, nil
}
