package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/configsource"
)

// Defaults.
const (
	DefaultInterval     = time.Second
	DefaultQPS          = 20
	DefaultBurst        = 40
	DefaultFieldManager = "trellis-discovery"
)

// Config configures a Writer.
type Config struct {
	// Dynamic writes the status subresource (required).
	Dynamic dynamic.Interface
	// Informers supplies the cached Istio objects (required); the Writer
	// shares the CRD config source's informers.
	Informers *kube.Informers
	// Messages returns the current analysis (required): analysis.Analyze
	// over the latest snapshot and the store's problems. It is called once
	// per pass and may return the same slice while nothing changed; the
	// Writer does not modify it.
	Messages func() []analysis.Message
	// Interval between passes (default DefaultInterval).
	Interval time.Duration
	// QPS and Burst bound the writes (defaults DefaultQPS, DefaultBurst).
	QPS   float32
	Burst int
	// FieldManager names the writer in managedFields (default
	// DefaultFieldManager).
	FieldManager string
	Logger       *slog.Logger
}

// Writer keeps the status.validationMessages of the cluster's Istio
// objects equal to the analysis. Run it on the leader only.
type Writer struct {
	cfg   Config
	kinds []kind
	names map[analysis.Code]string
	// passes, writes and failures count, for tests and logs.
	passes, writes, failures atomic.Int64
}

// New checks cfg and requests the informers. It does no I/O.
func New(cfg Config) (*Writer, error) {
	if cfg.Dynamic == nil || cfg.Informers == nil || cfg.Messages == nil {
		return nil, errors.New("status writer: Dynamic, Informers and Messages are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.QPS <= 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.FieldManager == "" {
		cfg.FieldManager = DefaultFieldManager
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: cfg, kinds: kinds(cfg.Informers), names: names()}, nil
}

// Writes returns how many patches succeeded so far.
func (w *Writer) Writes() int64 { return w.writes.Load() }

// Passes returns how many passes have completed so far.
func (w *Writer) Passes() int64 { return w.passes.Load() }

// objKey names one object.
type objKey struct {
	kind            int // index in kinds
	namespace, name string
}

// sent remembers a patch: the object's resourceVersion in the cache when
// it was written and what was written, so that the object is not written
// again before the cache has caught up.
type sent struct {
	resourceVersion string
	entries         []entry
}

// Run starts the informers it needs (a no-op when the config source has
// already started them), waits for their sync and then makes a pass every
// Interval until ctx is done.
func (w *Writer) Run(ctx context.Context) error {
	w.cfg.Informers.Start(ctx)
	synced := make([]func() bool, len(w.kinds))
	for i, k := range w.kinds {
		synced[i] = k.informer.HasSynced
	}
	if !kube.WaitFor(ctx, synced...) {
		return nil
	}
	limiter := flowcontrol.NewTokenBucketRateLimiter(w.cfg.QPS, w.cfg.Burst)
	defer limiter.Stop()
	memo := map[objKey]sent{}
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if err := w.pass(ctx, limiter, memo); err != nil {
			return nil // ctx done while waiting for the limiter
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// desired groups the cluster's messages by object.
func (w *Writer) desired() map[objKey][]entry {
	byKind := map[string]int{}
	for i, k := range w.kinds {
		byKind[k.gk.Kind] = i
	}
	per := map[objKey][]analysis.Message{}
	for _, m := range w.cfg.Messages() {
		o := m.Origin
		i, ok := byKind[o.Kind]
		if !ok || o.File != configsource.SourceName || o.Name == "" {
			continue
		}
		k := objKey{kind: i, namespace: o.Namespace, name: o.Name}
		per[k] = append(per[k], m)
	}
	out := make(map[objKey][]entry, len(per))
	for k, ms := range per {
		out[k] = fromMessages(ms, w.names)
	}
	return out
}

// pass compares every cached object with its desired messages and patches
// those that differ. It returns an error only when ctx ends.
func (w *Writer) pass(ctx context.Context, limiter flowcontrol.RateLimiter, memo map[objKey]sent) error {
	want := w.desired()
	seen := make(map[objKey]bool, len(memo))
	for i, k := range w.kinds {
		for _, obj := range k.informer.GetStore().List() {
			meta, cur, ok := current(obj)
			if !ok {
				continue
			}
			key := objKey{kind: i, namespace: meta.GetNamespace(), name: meta.GetName()}
			seen[key] = true
			es := want[key]
			if slices.Equal(normalize(fromStatus(cur)), es) {
				delete(memo, key)
				continue
			}
			if s, ok := memo[key]; ok && s.resourceVersion == meta.GetResourceVersion() && slices.Equal(s.entries, es) {
				continue // written; the cache has not seen it yet
			}
			if err := limiter.Wait(ctx); err != nil {
				return err
			}
			if err := w.write(ctx, k, meta, es); err != nil {
				w.failures.Add(1)
				w.cfg.Logger.Warn("writing status", "kind", k.gk.Kind, "object", key.namespace+"/"+key.name, "err", err)
				delete(memo, key)
				continue
			}
			w.writes.Add(1)
			memo[key] = sent{resourceVersion: meta.GetResourceVersion(), entries: es}
		}
	}
	for key := range memo {
		if !seen[key] {
			delete(memo, key)
		}
	}
	w.passes.Add(1)
	return nil
}

// write patches one object's status subresource.
func (w *Writer) write(ctx context.Context, k kind, meta metav1.Object, es []entry) error {
	body, err := patch(es)
	if err != nil {
		return fmt.Errorf("encoding status of %s %s/%s: %w", k.gk.Kind, meta.GetNamespace(), meta.GetName(), err)
	}
	_, err = w.cfg.Dynamic.Resource(k.gvr).Namespace(meta.GetNamespace()).Patch(ctx, meta.GetName(),
		types.MergePatchType, body, metav1.PatchOptions{FieldManager: w.cfg.FieldManager}, "status")
	if err != nil {
		return fmt.Errorf("patching status of %s %s/%s: %w", k.gk.Kind, meta.GetNamespace(), meta.GetName(), err)
	}
	codes := make([]string, len(es))
	for i, e := range es {
		codes[i] = e.Code
	}
	w.cfg.Logger.Info("status written", "kind", k.gk.Kind, "object", meta.GetNamespace()+"/"+meta.GetName(), "validationMessages", codes)
	return nil
}
