package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// nginxCapturePair is nginx-netns with traffic capture: the same two nginx
// processes and TLS 1.3 leg, reached through one iptables REDIRECT on each
// side as the trellis pair's traffic is, so that the difference between
// this pair and nginx-netns is the cost of capture (conntrack and NAT on
// every packet of both namespaces) and nothing else:
//
//	fortio (client netns) ─ connects to 10.89.X.11:8080
//	  ─(OUTPUT nat REDIRECT → 15001)→ nginx A (client netns, 0.0.0.0:15001)
//	  ─(TLS 1.3 to 10.89.X.11:15443 over the bridge)→ server netns
//	  ─(PREROUTING nat REDIRECT → 15006)→ nginx B (10.89.X.11:15006) → 127.0.0.1:8080
//
// The rules match by destination (the proxies' own connections go to other
// ports) rather than by owner, since nginx's worker runs as root like the
// client: a match that is only looked at for a connection's first packet,
// as conntrack keeps the NAT binding for the rest, as it does for
// `trellis proxy iptables`' rules. Its baseline is direct-netns.
type nginxCapturePair struct{}

func init() { registerPair(nginxCapturePair{}) }

func (nginxCapturePair) Name() string     { return "nginx-netns-capture" }
func (nginxCapturePair) Baseline() string { return "direct-netns" }

func (nginxCapturePair) Available(e *Env) error {
	for _, tool := range []string{"iptables", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			return &SkipError{Reason: "needs " + tool + " (apt-get install iptables)"}
		}
	}
	return nginxNetnsPair{}.Available(e)
}

// Ports of the capture variant: where REDIRECT sends traffic (Istio's
// outbound and inbound capture ports) and the address A sends to.
const (
	captureOutPort = 15001
	captureInPort  = 15006
	captureBPort   = 15443
)

// captureRules are the nat rules of the client (OUTPUT) and server
// (PREROUTING) namespaces, as iptables arguments after the -A/-D flag.
func captureRules(t *topology) (client, server []string) {
	srv := t.server.addr.String()
	client = []string{"OUTPUT", "-p", "tcp", "-d", srv, "--dport", strconv.Itoa(echoPort),
		"-j", "REDIRECT", "--to-ports", strconv.Itoa(captureOutPort)}
	server = []string{"PREROUTING", "-p", "tcp", "-d", srv, "--dport", strconv.Itoa(captureBPort),
		"-j", "REDIRECT", "--to-ports", strconv.Itoa(captureInPort)}
	return client, server
}

func (nginxCapturePair) Start(ctx context.Context, e *Env, _ string) (*Instance, error) {
	t, err := e.topology(ctx)
	if err != nil {
		return nil, err
	}
	clientRule, serverRule := captureRules(t)
	type rule struct {
		ns   string
		args []string
	}
	var installed []rule
	var a, b *proc
	stop := func() {
		if a != nil {
			a.stop()
		}
		if b != nil {
			b.stop()
		}
		a, b = nil, nil
		for _, r := range installed {
			if out, err := nsRun(r.ns, "iptables", append([]string{"-t", "nat", "-D"}, r.args...)...); err != nil {
				fmt.Fprintf(os.Stderr, "proxybench: removing capture rule in %s: %v\n%s", r.ns, err, out)
			}
		}
		installed = nil
	}
	fail := func(err error) (*Instance, error) {
		stop()
		return nil, err
	}
	for _, r := range []rule{{t.client.name, clientRule}, {t.server.name, serverRule}} {
		if _, err := nsRun(r.ns, "iptables", append([]string{"-t", "nat", "-A"}, r.args...)...); err != nil {
			return fail(err)
		}
		installed = append(installed, r)
		rules, err := nsRun(r.ns, "iptables-save", "-t", "nat")
		if err != nil {
			return fail(err)
		}
		if !strings.Contains(rules, "REDIRECT") {
			return fail(fmt.Errorf("%s: capture rule not installed:\n%s", r.ns, rules))
		}
	}
	b, err = startNginx(ctx, e, "capture-B", nginxConfig{Netns: t.server.name,
		Listen:   fmt.Sprintf("%s:%d", t.server.addr, captureInPort),
		Upstream: fmt.Sprintf("127.0.0.1:%d", echoPort), TLSListen: true})
	if err != nil {
		return fail(err)
	}
	a, err = startNginx(ctx, e, "capture-A", nginxConfig{Netns: t.client.name,
		// OUTPUT's REDIRECT sends to 127.0.0.1: listen on every address.
		Listen:   fmt.Sprintf("0.0.0.0:%d", captureOutPort),
		Wait:     fmt.Sprintf("%s:%d", t.client.addr, captureOutPort),
		Upstream: fmt.Sprintf("%s:%d", t.server.addr, captureBPort), TLSUpstream: true})
	if err != nil {
		return fail(err)
	}
	pa, errA := realPID(a.pid(), e.Nginx)
	pb, errB := realPID(b.pid(), e.Nginx)
	if errA != nil || errB != nil {
		return fail(fmt.Errorf("nginx pids: %v %v", errA, errB))
	}
	return &Instance{
		Addr:    t.echoAddr, // captured in the client netns
		Netns:   t.client.name,
		Proxies: []Proxy{{Name: "A", PID: pa}, {Name: "B", PID: pb}},
		Stop:    stop,
	}, nil
}
