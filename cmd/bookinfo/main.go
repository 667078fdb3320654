// Command bookinfo runs one service of the Bookinfo sample application
// (examples/bookinfo): bookinfo productpage|details|reviews|ratings [flags].
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/trellismesh/trellis/examples/bookinfo/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// run is the command: it returns the exit status (2 for usage errors).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, app.Usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cfg, err := app.ParseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bookinfo:", err)
		return 2
	}
	level := slog.LevelInfo
	if getenv("BOOKINFO_DEBUG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	svc, err := app.New(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "bookinfo:", err)
		return 2
	}
	if err := svc.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "bookinfo:", err)
		return 1
	}
	return 0
}
