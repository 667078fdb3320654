// Command trellis is the Trellis service mesh: control plane, proxy roles and
// operator commands, one subcommand each.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/cli/analyze"
	"github.com/trellismesh/trellis/internal/cli/apply"
	"github.com/trellismesh/trellis/internal/cli/bookinfo"
	clica "github.com/trellismesh/trellis/internal/cli/ca"
	clidashboard "github.com/trellismesh/trellis/internal/cli/dashboard"
	clidescribe "github.com/trellismesh/trellis/internal/cli/describe"
	clidiscovery "github.com/trellismesh/trellis/internal/cli/discovery"
	cliinstall "github.com/trellismesh/trellis/internal/cli/install"
	"github.com/trellismesh/trellis/internal/cli/kubeinject"
	cliproxy "github.com/trellismesh/trellis/internal/cli/proxy"
	"github.com/trellismesh/trellis/internal/cli/proxyconfig"
	"github.com/trellismesh/trellis/internal/cli/proxystatus"
	cliup "github.com/trellismesh/trellis/internal/cli/up"
	"github.com/trellismesh/trellis/internal/cli/version"
	"github.com/trellismesh/trellis/internal/kube"
)

// buildVersion is set at link time: -ldflags "-X main.buildVersion=v0.1.0".
var buildVersion string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	kube.RouteKlog(logger) // client-go logs through klog
	root := &cobra.Command{
		Use:           "trellis",
		Short:         "Trellis: a service mesh that speaks Istio",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		clidiscovery.NewCommand(logger),
		analyze.NewCommand(), clica.NewCommand(),
		cliproxy.NewCommand(logger),
		version.NewCommand(buildVersion),
		proxystatus.NewCommand(), proxyconfig.NewCommand(),
		clidashboard.NewCommand(),
		apply.NewApplyCommand(), apply.NewDeleteCommand(),
		clidescribe.NewCommand(),
		kubeinject.NewCommand(),
		cliinstall.NewInstallCommand(), cliinstall.NewUninstallCommand(), cliinstall.NewManifestCommand(),
		cliup.NewCommand(cliup.Deps{Executable: os.Executable, Geteuid: os.Geteuid}), bookinfo.NewCommand(os.Getenv),
	)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit interface{ ExitCode() int }
	if errors.As(err, &exit) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "error:", msg)
		}
		return exit.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	return 1
}
