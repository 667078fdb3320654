// Package analyze implements `trellis analyze [DIR...]`: it reads
// directories of Istio YAML once, with the same file store and ServiceEntry
// registry the control plane uses, runs package analysis over the result
// and prints the messages as text (istioctl's format), JSON or YAML.
//
// The command never calls os.Exit. When a message reaches the failure
// threshold it returns a *FindingsError, whose ExitCode the root command
// turns into the process's exit status (1).
package analyze

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/model"
)

// Deps are what the command takes from cmd. Zero fields take defaults.
type Deps struct {
	// Validate checks each object as the control plane does (default:
	// ingest.Validate, i.e. package validation).
	Validate store.ValidateFunc
	// Schemas are the kinds read (default: schema.Istio()).
	Schemas schema.Set
	// Logger receives the stores' own logs (default: discarded; problems
	// are reported as messages).
	Logger *slog.Logger
}

// Options are the command's flags.
type Options struct {
	Output           string
	OutputThreshold  string
	FailureThreshold string
	DomainSuffix     string
}

// FindingsError is returned when messages at or above the failure
// threshold were found. The messages have been printed already.
type FindingsError struct {
	// Counts holds the number of messages of each level (all of them, not
	// only those printed).
	Counts    map[analysis.Level]int
	Threshold analysis.Level
}

func (e *FindingsError) Error() string {
	var parts []string
	for _, l := range []analysis.Level{analysis.Error, analysis.Warning, analysis.Info} {
		if n := e.Counts[l]; n > 0 && l >= e.Threshold {
			parts = append(parts, plural(n, strings.ToLower(l.String())))
		}
	}
	return "analysis found " + strings.Join(parts, " and ")
}

// ExitCode is the process exit status for findings.
func (e *FindingsError) ExitCode() int { return 1 }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// NewCommand returns `trellis analyze`. It takes at most one Deps; with none,
// every dependency takes its default.
func NewCommand(deps ...Deps) *cobra.Command {
	var d Deps
	if len(deps) > 0 {
		d = deps[0]
	}
	if len(d.Schemas.All()) == 0 {
		d.Schemas = schema.Istio()
	}
	o := Options{Output: "text", OutputThreshold: "Info", FailureThreshold: "Error", DomainSuffix: model.DefaultDomainSuffix}
	cmd := &cobra.Command{
		Use:   "analyze [DIR...]",
		Short: "Check Istio configuration for problems before applying it",
		Long: `Read directories of Istio YAML (the current directory by default) and
report what will not work as meant: references to unknown hosts, gateways or
subsets, conflicting VirtualServices, subsets that select no endpoint,
objects that do not decode or validate, and more. Services and endpoints come
from the ServiceEntry and WorkloadEntry objects found, as in 'trellis up'.

Messages use istioctl's codes (IST0101, ...) where Istio has the same check,
and TRL codes otherwise. The command fails (exit status 1) when a message
reaches --failure-threshold.`,
		Example: `  trellis analyze ./mesh
  trellis analyze -o json ./base ./overlay`,
		// Findings are not usage errors, and the root command prints
		// errors itself.
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			return run(cmd, d, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", o.Output, "output format: text, json or yaml")
	f.StringVar(&o.OutputThreshold, "output-threshold", o.OutputThreshold, "lowest level printed: Info, Warning or Error")
	f.StringVar(&o.FailureThreshold, "failure-threshold", o.FailureThreshold, "lowest level that makes the command fail: Info, Warning or Error")
	f.StringVar(&o.DomainSuffix, "domain", o.DomainSuffix, "DNS domain suffix used to complete short host names")
	return cmd
}

func run(cmd *cobra.Command, d Deps, o Options, dirs []string) error {
	show, err := analysis.ParseLevel(o.OutputThreshold)
	if err != nil {
		return fmt.Errorf("--output-threshold: %w", err)
	}
	fail, err := analysis.ParseLevel(o.FailureThreshold)
	if err != nil {
		return fmt.Errorf("--failure-threshold: %w", err)
	}
	switch o.Output {
	case "text", "json", "yaml":
	default:
		return fmt.Errorf("--output: unknown format %q (want text, json or yaml)", o.Output)
	}
	in, err := analysis.Load(cmd.Context(), analysis.LoadConfig{
		Dirs:         dirs,
		Schemas:      d.Schemas,
		Validate:     d.Validate,
		DomainSuffix: o.DomainSuffix,
		Logger:       d.Logger,
	})
	if err != nil {
		return err
	}
	all := analysis.Analyze(in)
	if err := Print(cmd.OutOrStdout(), analysis.Filter(all, show), o.Output); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if len(analysis.Filter(all, fail)) > 0 {
		return &FindingsError{Counts: analysis.Count(all), Threshold: fail}
	}
	if o.Output == "text" && len(analysis.Filter(all, show)) == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "✔ No validation issues found when analyzing %s.\n", strings.Join(dirs, ", "))
	}
	return nil
}

// jsonMessage is a message in JSON and YAML output: the message's fields
// plus a link to Istio's documentation for IST codes.
type jsonMessage struct {
	analysis.Message
	DocumentationURL string `json:"documentationUrl,omitempty"`
}

// Print writes messages as text (one istioctl-style line each), json or
// yaml (a list; empty list when there are none).
func Print(w io.Writer, ms []analysis.Message, format string) error {
	switch format {
	case "text":
		for _, m := range ms {
			if _, err := fmt.Fprintln(w, m.String()); err != nil {
				return err
			}
		}
		return nil
	case "json", "yaml":
		out := make([]jsonMessage, len(ms))
		for i, m := range ms {
			out[i] = jsonMessage{Message: m, DocumentationURL: DocumentationURL(m.Code)}
		}
		var b []byte
		var err error
		if format == "json" {
			b, err = json.MarshalIndent(out, "", "  ")
			b = append(b, '\n')
		} else {
			b, err = yaml.Marshal(out)
		}
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output format %q", format)
}

// DocumentationURL links an IST code to Istio's page about it; "" for TRL
// codes.
func DocumentationURL(c analysis.Code) string {
	if !strings.HasPrefix(string(c), "IST") {
		return ""
	}
	return "https://istio.io/latest/docs/reference/config/analysis/" + strings.ToLower(string(c)) + "/"
}
