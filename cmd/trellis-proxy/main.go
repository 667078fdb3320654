// Command trellis-proxy is the slim data-plane binary that container images
// run: the `trellis proxy` commands (sidecar, iptables, wait) without the control
// plane or any Kubernetes client. It also accepts the full CLI's form,
// `trellis-proxy proxy sidecar ...`, so the proxy image can install it as
// `trellis` and the injected containers' `trellis proxy ...` commands run
// it unchanged.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	cliproxy "github.com/trellismesh/trellis/internal/cli/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	root := cliproxy.NewCommand(logger)
	root.Use = "trellis-proxy"
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetArgs(args(os.Args[1:]))
	// An unknown command is an error (exit 1), not the help text: a pod
	// that runs the wrong command must fail, not idle.
	root.Args = cobra.ArbitraryArgs
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return cmd.Help()
	}
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// args drops the leading "proxy" of the full CLI's form.
func args(in []string) []string {
	if len(in) > 0 && in[0] == "proxy" {
		return in[1:]
	}
	return in
}
