package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// waitOptions are the flags of `trellis proxy wait`, named as Istio's
// `pilot-agent wait` names them.
type waitOptions struct {
	url            string
	timeoutSeconds int
	periodMillis   int
	requestMillis  int
}

func newWaitCommand(d deps) *cobra.Command {
	var o waitOptions
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Wait until the sidecar is ready (as pilot-agent wait)",
		Long: `Poll the sidecar's readiness URL until it answers 200, then exit 0; exit 1
with a message naming the last error once --timeoutSeconds have passed.
Use it before starting the application (a postStart hook, or a script in
local mode) so that the application's first calls find the proxy
configured.

Flags follow Istio's pilot-agent wait; the kebab-case spellings
(--timeout-seconds, --period-millis, --request-timeout-millis) are accepted
too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "http://127.0.0.1:15021/healthz/ready", "the readiness URL to poll")
	f.IntVar(&o.timeoutSeconds, "timeoutSeconds", 60, "give up after this many seconds")
	f.IntVar(&o.periodMillis, "periodMillis", 500, "time between attempts, in milliseconds")
	f.IntVar(&o.requestMillis, "requestTimeoutMillis", 500, "timeout of each attempt, in milliseconds")
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		switch name {
		case "timeout-seconds":
			name = "timeoutSeconds"
		case "period-millis":
			name = "periodMillis"
		case "request-timeout-millis":
			name = "requestTimeoutMillis"
		}
		return pflag.NormalizedName(name)
	})
	return cmd
}

// run polls until ready, the timeout, or ctx is done.
func (o waitOptions) run(ctx context.Context, out io.Writer) error {
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want an http(s) URL", o.url)
	}
	switch {
	case o.timeoutSeconds <= 0:
		return fmt.Errorf("--timeoutSeconds %d: must be positive", o.timeoutSeconds)
	case o.periodMillis <= 0:
		return fmt.Errorf("--periodMillis %d: must be positive", o.periodMillis)
	case o.requestMillis <= 0:
		return fmt.Errorf("--requestTimeoutMillis %d: must be positive", o.requestMillis)
	}
	timeout := time.Duration(o.timeoutSeconds) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Duration(o.requestMillis) * time.Millisecond}
	fmt.Fprintf(out, "Waiting for the proxy to be ready (timeout %v, %s)\n", timeout, o.url)
	start := time.Now()
	tick := time.NewTicker(time.Duration(o.periodMillis) * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		err := probe(ctx, client, o.url)
		if err == nil {
			fmt.Fprintf(out, "The proxy is ready after %v\n", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if last == nil || ctx.Err() == nil { // keep the last real answer over our own deadline
			last = err
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("timeout waiting for the proxy to become ready after %v (%s); last error: %w", timeout, o.url, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// probe is one readiness request: nil on 200.
func probe(ctx context.Context, c *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
