package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// DefaultAddress is the control plane's monitoring address in local mode.
const DefaultAddress = "127.0.0.1:15014"

// Deps are what the command takes from the process; zero fields take the
// real ones.
type Deps struct {
	// LookPath finds xdg-open (default exec.LookPath).
	LookPath func(string) (string, error)
	// Open starts the program on the URL and does not wait for it
	// (default: exec.Command(...).Start).
	Open func(program, url string) error
	// Client checks the dashboard (default: 5s timeout, no proxy).
	Client *http.Client
}

// Options are the command's flags.
type Options struct {
	Address string
	Browser bool
}

// NewCommand returns `trellis dashboard`. It takes at most one Deps.
func NewCommand(deps ...Deps) *cobra.Command {
	var d Deps
	if len(deps) > 0 {
		d = deps[0]
	}
	if d.LookPath == nil {
		d.LookPath = exec.LookPath
	}
	if d.Open == nil {
		d.Open = openURL
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	o := Options{Address: DefaultAddress, Browser: true}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Open the mesh dashboard the control plane serves",
		Long: `Print the URL of the dashboard the control plane serves on its monitoring
address (/dashboard/): a live service graph with request rate, error rate,
p99 latency and mTLS per edge, the proxies and their xDS sync state, every
configuration object with its analysis messages, and each workload's
effective routes and policies. With a desktop (xdg-open), open it.

The dashboard answers callers on the control plane's host only.`,
		Example: `  trellis dashboard
  trellis dashboard --address 127.0.0.1:15014 --browser=false`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Run(cmd.Context(), cmd.OutOrStdout(), d, o)
		},
	}
	cmd.Flags().StringVar(&o.Address, "address", o.Address, "the control plane's monitoring address (host:port)")
	cmd.Flags().BoolVar(&o.Browser, "browser", o.Browser, "open the dashboard with xdg-open when it is installed")
	return cmd
}

// openURL runs program on url. xdg-open usually exits at once, with an
// error when there is no desktop; some browsers keep it running, so it is
// given two seconds to fail and otherwise left to finish on its own.
func openURL(program, url string) error {
	var out strings.Builder
	cmd := exec.Command(program, url)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			msg := strings.TrimSpace(out.String())
			if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
				msg = msg[i+1:] // xdg-open's conclusion, after one line per browser tried
			}
			return fmt.Errorf("%w: %s", err, msg)
		}
	case <-time.After(2 * time.Second):
	}
	return nil
}

// URL is the dashboard's URL on a monitoring address.
func URL(address string) string {
	return "http://" + strings.TrimSuffix(strings.TrimPrefix(address, "http://"), "/") + "/dashboard/"
}

// Run checks that the dashboard answers, prints its URL and opens it.
func Run(ctx context.Context, w io.Writer, d Deps, o Options) error {
	if o.Address == "" {
		return fmt.Errorf("--address: required (the control plane's monitoring address, e.g. %s)", DefaultAddress)
	}
	u := URL(o.Address)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("--address %q: %w", o.Address, err)
	}
	res, err := d.Client.Do(req)
	if err != nil {
		return fmt.Errorf("the dashboard at %s does not answer: %w (is the control plane running, `trellis up` or `trellis discovery`? is --address its monitoring address?)", u, err)
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the dashboard at %s answered %s: %s", u, res.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(w, "Dashboard: %s\n", u)
	if !o.Browser {
		return nil
	}
	program, err := d.LookPath("xdg-open")
	if err != nil {
		fmt.Fprintln(w, "(xdg-open not found: open the URL in a browser on this host)")
		return nil
	}
	if err := d.Open(program, u); err != nil {
		fmt.Fprintf(w, "(could not open a browser with %s: %v; open the URL yourself)\n", program, err)
		return nil
	}
	fmt.Fprintln(w, "Opened in your browser.")
	return nil
}
