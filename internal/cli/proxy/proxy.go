package proxy

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/dataplane/capture"
)

// env is the process environment, injectable for tests.
type env func(key string) string

// deps are what the subcommands take from the host; tests replace them.
type deps struct {
	logger *slog.Logger
	getenv env
	runner capture.Runner // runs iptables-restore / iptables-save
	// signals, when set, receives the termination signals after the
	// first (which cancels the command's context): the sidecar stops at
	// once on the next one. Nil in tests.
	signals func() (<-chan os.Signal, func())
}

// NewCommand returns `trellis proxy`, the data-plane command group. Each
// subcommand lives in its own file and is added here.
func NewCommand(logger *slog.Logger) *cobra.Command {
	return newCommand(deps{logger: logger, getenv: os.Getenv, runner: capture.ExecRunner{}, signals: terminationSignals})
}

func newCommand(d deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the Trellis data plane and set up its traffic capture",
		Long: `Data-plane commands: the proxy roles and the set-up steps that run
before them (what Istio's init container and pilot-agent do).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		newIptablesCommand(d),
		newSidecarCommand(d),
		newWaitCommand(d),
	)
	return cmd
}

// terminationSignals subscribes to SIGTERM and SIGINT.
func terminationSignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	return ch, func() { signal.Stop(ch) }
}
