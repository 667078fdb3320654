// Command trellis-proxy is the slim data-plane binary that container images
// run: the `trellis proxy` commands (sidecar, iptables, wait) without the control
// plane or any Kubernetes client.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
