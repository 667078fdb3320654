package apply

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/up"
)

// options are the flags shared by apply and delete.
type options struct {
	files   []string
	dir     string
	runFile string
}

func (o *options) flags(cmd *cobra.Command, verb string) {
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "file of Istio YAML to "+verb+" (repeatable)")
	f.StringVar(&o.dir, "dir", "", "the directory trellis up watches (default: the one recorded in --run-file)")
	f.StringVar(&o.runFile, "run-file", up.DefaultRunFile, "the run file of the trellis up to change")
}

// target returns the watched directory.
func (o *options) target() (string, error) {
	if o.dir != "" {
		st, err := os.Stat(o.dir)
		if err != nil {
			return "", fmt.Errorf("--dir: %w", err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("--dir: %s is not a directory", o.dir)
		}
		return filepath.Abs(o.dir)
	}
	ri, err := up.ReadRunFile(o.runFile)
	if err != nil {
		if errors.Is(err, up.ErrNotRunning) {
			return "", fmt.Errorf("%w: start it (trellis up), run this command where you ran it, or pass --dir", err)
		}
		return "", err
	}
	return ri.Dir, nil
}

// inputs reads and checks every -f file.
func (o *options) inputs() ([]object, error) {
	if len(o.files) == 0 {
		return nil, errors.New("no file: pass -f FILE")
	}
	var files []file
	for _, path := range o.files {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := readFile(path, data, true)
		if err != nil {
			return nil, fmt.Errorf("%s is not valid, nothing was changed:\n%w", path, err)
		}
		files = append(files, f)
	}
	return objects(files)
}

// NewApplyCommand returns `trellis apply`.
func NewApplyCommand() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace Istio objects in the mesh trellis up runs (local mode)",
		Long: `Validate FILE with the control plane's rules, then write each of its
objects into the directory trellis up watches, as
<kind>.<namespace>.<name>.yaml, removing the object from whatever file
defined it before. The control plane picks the change up within a second.
An invalid FILE changes nothing.`,
		Example:       "  trellis apply -f ../istio/samples/bookinfo/networking/virtual-service-reviews-50-v3.yaml",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.OutOrStdout(), &o, planApply)
		},
	}
	o.flags(cmd, "apply")
	return cmd
}

// NewDeleteCommand returns `trellis delete`.
func NewDeleteCommand() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "delete -f FILE",
		Short: "Remove Istio objects from the mesh trellis up runs (local mode)",
		Long: `Remove every object FILE names (kind, namespace, name) from the directory
trellis up watches; a file left without objects is removed. Objects that
are not there are reported as not found and make the command fail.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.OutOrStdout(), &o, planDelete)
		},
	}
	o.flags(cmd, "delete")
	return cmd
}

func run(out io.Writer, o *options, planFn func(string, []file, []object) (Plan, error)) error {
	objs, err := o.inputs()
	if err != nil {
		return err
	}
	dir, err := o.target()
	if err != nil {
		return err
	}
	current, err := readDir(dir)
	if err != nil {
		return err
	}
	p, err := planFn(dir, current, objs)
	if err != nil {
		return fmt.Errorf("nothing was changed: %w", err)
	}
	if err := execute(p); err != nil {
		return err
	}
	missing := 0
	for _, c := range p.Changes {
		fmt.Fprintf(out, "%s %s\n", c.Key, c.Action)
		if c.Action == "not found" {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d object(s) not found in %s", missing, dir)
	}
	return nil
}
