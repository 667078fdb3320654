package bookinfo

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/examples/bookinfo/app"
)

// NewCommand returns `trellis bookinfo`. getenv is the process environment
// (os.Getenv), read for the flags' defaults as cmd/bookinfo does.
func NewCommand(getenv func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "bookinfo productpage|details|reviews|ratings [flags]",
		Short: "Run one service of the Bookinfo sample application",
		Long: `Run one service of the Bookinfo sample (examples/bookinfo): the same
program as cmd/bookinfo, built into trellis so that 'trellis up' can start
the sample's workloads. Run 'trellis bookinfo ROLE -h' for a role's flags.`,
		// The role parses its own flags (Go's flag package, as cmd/bookinfo).
		DisableFlagParsing: true,
		SilenceUsage:       true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, args, getenv)
		},
	}
}

func run(cmd *cobra.Command, args []string, getenv func(string) string) error {
	stderr := cmd.ErrOrStderr()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, app.Usage)
		if len(args) == 0 {
			return errors.New("bookinfo: a role is required")
		}
		return nil
	}
	cfg, err := app.ParseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bookinfo: %w", err)
	}
	svc, err := app.New(cfg, logger(stderr, getenv))
	if err != nil {
		return fmt.Errorf("bookinfo: %w", err)
	}
	if err := svc.Run(cmd.Context()); err != nil {
		return fmt.Errorf("bookinfo %s: %w", args[0], err)
	}
	return nil
}

func logger(w io.Writer, getenv func(string) string) *slog.Logger {
	level := slog.LevelInfo
	if getenv("BOOKINFO_DEBUG") != "" {
		level = slog.LevelDebug
	}
	if w == nil {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
