package rootcm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Name and Key of the ConfigMap.
const (
	Name = "istio-ca-root-cert"
	Key  = "root-cert.pem"
)

// skipped namespaces get no ConfigMap.
var skipped = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// Config configures a Publisher.
type Config struct {
	Client kubernetes.Interface
	// Roots returns the PEM to publish (ca.Authority.Roots().PEM()).
	Roots func() []byte
	// Interval between checks of Roots for a change (default 5s).
	Interval time.Duration
	Logger   *slog.Logger
}

// Publisher keeps the root ConfigMap of every namespace current.
type Publisher struct {
	cfg Config
}

// New checks cfg. It does no I/O.
func New(cfg Config) (*Publisher, error) {
	if cfg.Client == nil || cfg.Roots == nil {
		return nil, errors.New("root ConfigMap publisher: Client and Roots are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{cfg: cfg}, nil
}

// Run publishes until ctx is done. It starts its own informers (a
// namespace informer and one over the ConfigMaps named Name) and stops
// them before returning.
func (p *Publisher) Run(ctx context.Context) error {
	nsf := informers.NewSharedInformerFactory(p.cfg.Client, 0)
	cmf := informers.NewSharedInformerFactoryWithOptions(p.cfg.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", Name).String()
	}))
	nsInf := nsf.Core().V1().Namespaces()
	cmInf := cmf.Core().V1().ConfigMaps()
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "root-configmap"})
	defer q.ShutDown()
	enqueueNS := func(obj any) {
		if o, ok := tombstone(obj).(metav1.Object); ok {
			if _, isNS := o.(*corev1.Namespace); isNS {
				q.Add(o.GetName())
			} else {
				q.Add(o.GetNamespace())
			}
		}
	}
	if _, err := nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueueNS}); err != nil {
		return fmt.Errorf("root ConfigMap publisher: %w", err)
	}
	if _, err := cmInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, n any) { enqueueNS(n) },
		DeleteFunc: enqueueNS,
	}); err != nil {
		return fmt.Errorf("root ConfigMap publisher: %w", err)
	}
	nsf.Start(ctx.Done())
	cmf.Start(ctx.Done())
	defer nsf.Shutdown()
	defer cmf.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nsInf.Informer().HasSynced, cmInf.Informer().HasSynced) {
		return nil // ctx ended
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-ctx.Done()
		q.ShutDown()
	})
	// Root changes: enqueue every namespace.
	wg.Go(func() {
		last := p.cfg.Roots()
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if cur := p.cfg.Roots(); !bytes.Equal(cur, last) {
				last = cur
				p.cfg.Logger.Info("roots changed: republishing the root ConfigMaps")
				for _, o := range nsInf.Informer().GetStore().List() {
					enqueueNS(o)
				}
			}
		}
	})
	for {
		ns, quit := q.Get()
		if quit {
			return nil
		}
		err := p.reconcile(ctx, ns, nsInf.Lister().Get, cmInf.Lister().ConfigMaps(ns).Get)
		switch {
		case err == nil:
			q.Forget(ns)
		case ctx.Err() == nil:
			p.cfg.Logger.Warn("publishing the root ConfigMap", "namespace", ns, "err", err)
			q.AddRateLimited(ns)
		}
		q.Done(ns)
	}
}

func tombstone(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// reconcile makes namespace ns's ConfigMap hold the current roots.
func (p *Publisher) reconcile(ctx context.Context, ns string,
	getNS func(string) (*corev1.Namespace, error), getCM func(string) (*corev1.ConfigMap, error)) error {
	if skipped[ns] {
		return nil
	}
	n, err := getNS(ns)
	if apierrors.IsNotFound(err) || (err == nil && n.Status.Phase == corev1.NamespaceTerminating) {
		return nil
	}
	if err != nil {
		return err
	}
	want := string(p.cfg.Roots())
	if want == "" {
		return errors.New("no roots to publish")
	}
	api := p.cfg.Client.CoreV1().ConfigMaps(ns)
	cm, err := getCM(Name)
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: Name, Labels: map[string]string{"istio.io/config": "true"}},
			Data:       map[string]string{Key: want},
		}, metav1.CreateOptions{FieldManager: "trellis"})
		if apierrors.IsAlreadyExists(err) {
			return p.update(ctx, ns, want) // the informer had not seen it yet
		}
		if err != nil {
			return fmt.Errorf("creating ConfigMap %s/%s: %w", ns, Name, err)
		}
		p.cfg.Logger.Debug("root ConfigMap created", "namespace", ns)
		return nil
	}
	if err != nil {
		return err
	}
	if cm.Data[Key] == want && len(cm.Data) == 1 && len(cm.BinaryData) == 0 {
		return nil
	}
	return p.update(ctx, ns, want)
}

// update overwrites the ConfigMap's data with the roots, read fresh so a
// stale cache does not cause a conflict loop.
func (p *Publisher) update(ctx context.Context, ns, want string) error {
	api := p.cfg.Client.CoreV1().ConfigMaps(ns)
	cm, err := api.Get(ctx, Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading ConfigMap %s/%s: %w", ns, Name, err)
	}
	cm.Data = map[string]string{Key: want}
	cm.BinaryData = nil
	if _, err := api.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "trellis"}); err != nil {
		return fmt.Errorf("updating ConfigMap %s/%s: %w", ns, Name, err)
	}
	p.cfg.Logger.Info("root ConfigMap updated", "namespace", ns)
	return nil
}
