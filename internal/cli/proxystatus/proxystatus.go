package proxystatus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/xds/server"
)

// DefaultDebugAddress is the control plane's monitoring address, which
// serves /debug/syncz to local callers.
const DefaultDebugAddress = "127.0.0.1:15014"

// columns are the xDS types of the table, in istioctl's order.
var columns = []string{"CDS", "LDS", "EDS", "RDS"}

// Options are the command's flags.
type Options struct {
	// DebugAddress is the control plane's monitoring address (host:port or
	// URL).
	DebugAddress string
	// Namespace completes a proxy name given without one.
	Namespace string
	// Output is "table" (default), "wide" or "json".
	Output string
	// Client makes the HTTP request (default: 10s timeout).
	Client *http.Client
}

// NewCommand returns `trellis proxy-status`.
func NewCommand() *cobra.Command {
	var o Options
	cmd := &cobra.Command{
		Use:     "proxy-status [PROXY]",
		Aliases: []string{"ps"},
		Short:   "Show whether each connected proxy has the latest configuration (per xDS type)",
		Long: `List every proxy connected to the control plane with the state of each xDS type:
SYNCED (the last response was ACKed), STALE (sent, not answered yet), NACKED (rejected;
the proxy's error is printed below the table) or NOT SENT.

With PROXY (pod.namespace as listed, a name without a dot is completed with
--namespace, or the full node ID) the versions, nonces and last error of each type
of that proxy are shown.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			proxy := ""
			if len(args) == 1 {
				proxy = args[0]
			}
			return Run(cmd.Context(), cmd.OutOrStdout(), proxy, o)
		},
	}
	cmd.Flags().StringVar(&o.DebugAddress, "xds-debug-address", DefaultDebugAddress, "the control plane's monitoring address (serves /debug/syncz)")
	cmd.Flags().StringVarP(&o.Namespace, "namespace", "n", "default", "namespace of a proxy named without one")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "table", "output format: table, wide or json")
	return cmd
}

// Run fetches the control plane's sync status and prints it.
func Run(ctx context.Context, w io.Writer, proxy string, o Options) error {
	switch o.Output {
	case "", "table", "wide", "json":
	default:
		return fmt.Errorf("unknown output format %q (want table, wide or json)", o.Output)
	}
	st, err := Fetch(ctx, o)
	if err != nil {
		return err
	}
	if proxy != "" {
		if !strings.ContainsAny(proxy, ".~") {
			proxy += "." + o.Namespace
		}
		st = Select(st, proxy)
		if len(st) == 0 {
			return fmt.Errorf("proxy %q is not connected to the control plane at %s (trellis proxy-status lists those that are)", proxy, o.DebugAddress)
		}
	}
	if o.Output == "json" {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	if proxy != "" {
		return WriteDetail(w, st)
	}
	return WriteTable(w, st, o.Output == "wide")
}

// Fetch reads /debug/syncz from the control plane.
func Fetch(ctx context.Context, o Options) ([]server.SyncStatus, error) {
	addr := o.DebugAddress
	if addr == "" {
		addr = DefaultDebugAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	c := o.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(addr, "/")+"/debug/syncz", nil)
	if err != nil {
		return nil, fmt.Errorf("--xds-debug-address %q: %w", o.DebugAddress, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the sync status from the control plane: %w (is trellis discovery running here? --xds-debug-address sets its monitoring address)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the sync status from %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the sync status from %s: %s: %s", addr, resp.Status, strings.TrimSpace(string(b)))
	}
	var st []server.SyncStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("sync status from %s: %w", addr, err)
	}
	return st, nil
}

// Select keeps the streams of the proxy named by its node ID, connection
// ID or pod.namespace name.
func Select(st []server.SyncStatus, proxy string) []server.SyncStatus {
	var out []server.SyncStatus
	for _, s := range st {
		if s.Proxy == proxy || s.ConnectionID == proxy || s.Name == proxy {
			out = append(out, s)
		}
	}
	return out
}

// state returns a type's state on a stream (NOT SENT if not asked for).
func state(s server.SyncStatus, typ string) (server.XDSSync, bool) {
	for _, x := range s.XDS {
		if x.Type == typ {
			return x, true
		}
	}
	return server.XDSSync{Type: typ, Status: server.StateNotSent}, false
}

// WriteTable prints istioctl's proxy-status table: NAME, CLUSTER, CDS, LDS,
// EDS, RDS, ISTIOD, VERSION (wide adds the connection, its transport and
// how long it has been up), then the error of every NACKED type.
func WriteTable(w io.Writer, st []server.SyncStatus, wide bool) error {
	return writeTable(w, st, wide, time.Now())
}

func writeTable(w io.Writer, st []server.SyncStatus, wide bool, now time.Time) error {
	header := append(append([]string{"NAME", "CLUSTER"}, columns...), "ISTIOD", "VERSION")
	if wide {
		header = append(header, "CONNECTION", "TRANSPORT", "AGE")
	}
	var rows [][]string
	var nacks []string
	for _, s := range st {
		row := []string{dash(s.Name), dash(s.ClusterID)}
		for _, typ := range columns {
			x, _ := state(s, typ)
			row = append(row, x.Status)
			if x.Status == server.StateNACKed {
				nacks = append(nacks, fmt.Sprintf("  %s %s: %s", s.Name, typ, x.LastNACK))
			}
		}
		row = append(row, dash(s.ControlPlane), dash(s.ProxyVersion))
		if wide {
			transport := "sotw"
			if s.Delta {
				transport = "delta"
			}
			row = append(row, s.ConnectionID, transport, age(now.Sub(s.ConnectedAt)))
		}
		rows = append(rows, row)
	}
	if err := writeAligned(w, header, rows); err != nil {
		return err
	}
	if len(nacks) > 0 {
		fmt.Fprintln(w, "\nNACKED (last error reported by the proxy):")
		for _, n := range nacks {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}

// WriteDetail prints, for each stream of one proxy, every type's state,
// versions, nonces and last NACK error.
func WriteDetail(w io.Writer, st []server.SyncStatus) error {
	for k, s := range st {
		if k > 0 {
			fmt.Fprintln(w)
		}
		transport := "sotw"
		if s.Delta {
			transport = "delta"
		}
		fmt.Fprintf(w, "Proxy:         %s\nConnection:    %s (%s)\nControl plane: %s\nVersion:       %s\n\n",
			s.Proxy, s.ConnectionID, transport, dash(s.ControlPlane), dash(s.ProxyVersion))
		var rows [][]string
		var errs []string
		for _, typ := range columns {
			x, _ := state(s, typ)
			rows = append(rows, []string{typ, x.Status, dash(x.SentVersion), dash(x.SentNonce), dash(x.AckedVersion), dash(x.AckedNonce)})
			if x.LastNACK != "" {
				errs = append(errs, fmt.Sprintf("  %s (%s): %s", typ, strings.ToLower(x.Status), x.LastNACK))
			}
		}
		if err := writeAligned(w, []string{"TYPE", "STATUS", "SENT VERSION", "SENT NONCE", "ACKED VERSION", "ACKED NONCE"}, rows); err != nil {
			return err
		}
		if len(errs) > 0 {
			fmt.Fprintln(w, "\nLast NACK error:")
			for _, e := range errs {
				fmt.Fprintln(w, e)
			}
		}
	}
	return nil
}

func writeAligned(w io.Writer, header []string, rows [][]string) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age prints a duration as kubectl does: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
