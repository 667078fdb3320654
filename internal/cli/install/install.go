package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/trellismesh/trellis/internal/install"
	"github.com/trellismesh/trellis/internal/kube"
)

// FieldManager is the server-side apply field manager of install.
const FieldManager = "trellis"

// pollInterval is how often install checks CRDs and the Deployment.
const pollInterval = 250 * time.Millisecond

type options struct {
	install.Options
	pullPolicy string
	noCRDs     bool
}

func (o *options) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Namespace, "namespace", "n", install.DefaultNamespace, "the control plane's namespace")
	f.StringVar(&o.Image, "image", install.DefaultImage, "image of the control plane (runs trellis discovery)")
	f.StringVar(&o.pullPolicy, "image-pull-policy", "", "image pull policy of the control plane (Always, IfNotPresent, Never; default: the cluster's)")
	f.StringVar(&o.Revision, "revision", install.DefaultRevision, "control-plane revision (istio.io/rev)")
	f.Int32Var(&o.Replicas, "replicas", 1, "control-plane replicas")
}

func (o *options) objects() ([]install.Object, error) {
	io := o.Options
	io.ImagePullPolicy = corev1.PullPolicy(o.pullPolicy)
	objs, err := install.Objects(io)
	if err != nil {
		return nil, err
	}
	if o.noCRDs {
		objs = install.WithoutCRDs(objs)
	}
	return objs, nil
}

// NewManifestCommand returns `trellis manifest` with its `generate`
// subcommand.
func NewManifestCommand() *cobra.Command {
	root := &cobra.Command{Use: "manifest", Short: "Kubernetes manifests of a Trellis installation", Args: cobra.NoArgs}
	var o options
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Print the manifests `trellis install` applies, as YAML",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := o.objects()
			if err != nil {
				return err
			}
			data, err := install.Render(objs)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	o.flags(gen)
	gen.Flags().BoolVar(&o.noCRDs, "no-crds", false, "leave the CRDs out")
	root.AddCommand(gen)
	return root
}

// NewInstallCommand returns `trellis install`.
func NewInstallCommand() *cobra.Command {
	var (
		o                       options
		kubeconfig, kubeContext string
		timeout                 time.Duration
		wait                    bool
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install Trellis on a cluster (server-side apply of CRDs, RBAC, control plane, webhooks)",
		Long: `Install Trellis on the cluster of --kubeconfig (kubectl's rules when empty).

Applies, with server-side apply (field manager "trellis"), Istio's and the
Gateway API's CRDs, then waits until they are established; then the
namespace, RBAC, the istiod Service, the trellis Deployment and the webhook
configurations; then waits until the Deployment is available (--wait).
Running it again with the same options changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := o.objects()
			if err != nil {
				return err
			}
			c, err := kube.FromKubeconfig(kubeconfig, kubeContext)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return Install(ctx, c, objs, wait, cmd.OutOrStdout())
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	f.StringVar(&kubeContext, "kube-context", "", "kubeconfig context (default: the current one)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	f.BoolVar(&wait, "wait", true, "wait until the Deployment is available (needs nodes that run it)")
	return cmd
}

// NewUninstallCommand returns `trellis uninstall`.
func NewUninstallCommand() *cobra.Command {
	var (
		o                       options
		kubeconfig, kubeContext string
		crds                    bool
		timeout                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what trellis install applied (CRDs only with --crds)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.noCRDs = !crds
			objs, err := o.objects()
			if err != nil {
				return err
			}
			c, err := kube.FromKubeconfig(kubeconfig, kubeContext)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return Uninstall(ctx, c, objs, cmd.OutOrStdout())
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	f.StringVar(&kubeContext, "kube-context", "", "kubeconfig context (default: the current one)")
	f.BoolVar(&crds, "crds", false, "delete the CRDs too, and with them every Istio and Gateway API object")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

// Install applies objs (CRDs first, waiting until they are established)
// and, with wait, waits until the Deployments among them are available.
// It prints one line per object: created, configured or unchanged.
func Install(ctx context.Context, c *kube.Client, objs []install.Object, wait bool, out io.Writer) error {
	var crds, rest []install.Object
	for _, o := range objs {
		if o.IsCRD() {
			crds = append(crds, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, o := range crds {
		if err := apply(ctx, c, o, out); err != nil {
			return err
		}
	}
	for _, o := range crds {
		if err := waitFor(ctx, c, o, "Established"); err != nil {
			return err
		}
	}
	for _, o := range rest {
		if err := apply(ctx, c, o, out); err != nil {
			return err
		}
	}
	if !wait {
		return nil
	}
	for _, o := range rest {
		if o.Object.GetKind() == "Deployment" {
			if err := waitFor(ctx, c, o, "Available"); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s available\n", o)
		}
	}
	return nil
}

func resource(c *kube.Client, o install.Object) interface {
	Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
	Apply(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions, ...string) (*unstructured.Unstructured, error)
	Delete(context.Context, string, metav1.DeleteOptions, ...string) error
} {
	r := c.Dynamic.Resource(o.Resource)
	if o.Namespaced {
		return r.Namespace(o.Object.GetNamespace())
	}
	return r
}

func apply(ctx context.Context, c *kube.Client, o install.Object, out io.Writer) error {
	api := resource(c, o)
	name := o.Object.GetName()
	before := ""
	switch cur, err := api.Get(ctx, name, metav1.GetOptions{}); {
	case err == nil:
		before = cur.GetResourceVersion()
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading %s: %w", o, err)
	}
	got, err := api.Apply(ctx, name, o.Object, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("applying %s: %w", o, err)
	}
	switch {
	case before == "":
		fmt.Fprintf(out, "%s created\n", o)
	case got.GetResourceVersion() != before:
		fmt.Fprintf(out, "%s configured\n", o)
	default:
		fmt.Fprintf(out, "%s unchanged\n", o)
	}
	return nil
}

// waitFor polls o until its status has condition cond True, or ctx ends.
func waitFor(ctx context.Context, c *kube.Client, o install.Object, cond string) error {
	api := resource(c, o)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	last := "not seen yet"
	for {
		cur, err := api.Get(ctx, o.Object.GetName(), metav1.GetOptions{})
		switch {
		case err == nil:
			if ok, state := hasCondition(cur, cond); ok {
				return nil
			} else {
				last = state
			}
		case ctx.Err() == nil:
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not %s: %s: %w", o, cond, last, ctx.Err())
		case <-t.C:
		}
	}
}

func hasCondition(u *unstructured.Unstructured, cond string) (bool, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != cond {
			continue
		}
		if m["status"] == "True" {
			return true, ""
		}
		return false, fmt.Sprintf("condition %s is %v (%v)", cond, m["status"], m["message"])
	}
	return false, fmt.Sprintf("no %s condition yet", cond)
}

// Uninstall deletes objs in reverse order, skipping those already gone.
func Uninstall(ctx context.Context, c *kube.Client, objs []install.Object, out io.Writer) error {
	var errs []error
	for _, o := range slices.Backward(objs) {
		err := resource(c, o).Delete(ctx, o.Object.GetName(), metav1.DeleteOptions{})
		switch {
		case err == nil:
			fmt.Fprintf(out, "%s deleted\n", o)
		case apierrors.IsNotFound(err):
			fmt.Fprintf(out, "%s not found\n", o)
		default:
			errs = append(errs, fmt.Errorf("deleting %s: %w", o, err))
		}
	}
	return errors.Join(errs...)
}
