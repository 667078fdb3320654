package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// BundleConfig configures a BundleSyncer.
type BundleConfig struct {
	Client kubernetes.Interface
	// Mutating and Validating name the configurations to keep current;
	// an empty name is skipped.
	Mutating, Validating string
	// Bundle returns the caBundle to publish (Certs.CABundle).
	Bundle func() []byte
	// Interval between checks (default 1 minute). A check writes only
	// when a webhook's caBundle differs.
	Interval time.Duration
	Logger   *slog.Logger
}

// BundleSyncer keeps the caBundle of every webhook of the two
// configurations equal to the roots the serving certificate chains to, so
// that a CA rotation never breaks admission. Only one control-plane
// replica should run it (the leader, once leader election exists).
type BundleSyncer struct {
	cfg BundleConfig
}

// NewBundleSyncer checks cfg. It does no I/O.
func NewBundleSyncer(cfg BundleConfig) (*BundleSyncer, error) {
	if cfg.Client == nil || cfg.Bundle == nil {
		return nil, errors.New("webhook caBundle syncer: Client and Bundle are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &BundleSyncer{cfg: cfg}, nil
}

// Run syncs at once, then every Interval, until ctx is done. Failures are
// logged and retried at the next tick.
func (b *BundleSyncer) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	for {
		if err := b.Sync(ctx); err != nil && ctx.Err() == nil {
			b.cfg.Logger.Warn("updating the webhook caBundle", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sync updates the configurations whose caBundle is not the current one.
// A configuration that does not exist (not installed yet) is not an
// error.
func (b *BundleSyncer) Sync(ctx context.Context) error {
	want := b.cfg.Bundle()
	if len(want) == 0 {
		return errors.New("no CA bundle to publish")
	}
	var errs []error
	if b.cfg.Mutating != "" {
		errs = append(errs, b.syncMutating(ctx, want))
	}
	if b.cfg.Validating != "" {
		errs = append(errs, b.syncValidating(ctx, want))
	}
	return errors.Join(errs...)
}

func (b *BundleSyncer) syncMutating(ctx context.Context, want []byte) error {
	api := b.cfg.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	c, err := api.Get(ctx, b.cfg.Mutating, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		b.cfg.Logger.Debug("webhook configuration not found", "kind", "MutatingWebhookConfiguration", "name", b.cfg.Mutating)
		return nil
	}
	if err != nil {
		return fmt.Errorf("MutatingWebhookConfiguration %s: %w", b.cfg.Mutating, err)
	}
	changed := false
	for i := range c.Webhooks {
		if !bytes.Equal(c.Webhooks[i].ClientConfig.CABundle, want) {
			c.Webhooks[i].ClientConfig.CABundle = want
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, c, metav1.UpdateOptions{FieldManager: "trellis"}); err != nil {
		return fmt.Errorf("MutatingWebhookConfiguration %s: updating caBundle: %w", b.cfg.Mutating, err)
	}
	b.cfg.Logger.Info("webhook caBundle updated", "kind", "MutatingWebhookConfiguration", "name", b.cfg.Mutating)
	return nil
}

func (b *BundleSyncer) syncValidating(ctx context.Context, want []byte) error {
	api := b.cfg.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	c, err := api.Get(ctx, b.cfg.Validating, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		b.cfg.Logger.Debug("webhook configuration not found", "kind", "ValidatingWebhookConfiguration", "name", b.cfg.Validating)
		return nil
	}
	if err != nil {
		return fmt.Errorf("ValidatingWebhookConfiguration %s: %w", b.cfg.Validating, err)
	}
	changed := false
	for i := range c.Webhooks {
		if !bytes.Equal(c.Webhooks[i].ClientConfig.CABundle, want) {
			c.Webhooks[i].ClientConfig.CABundle = want
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, c, metav1.UpdateOptions{FieldManager: "trellis"}); err != nil {
		return fmt.Errorf("ValidatingWebhookConfiguration %s: updating caBundle: %w", b.cfg.Validating, err)
	}
	b.cfg.Logger.Info("webhook caBundle updated", "kind", "ValidatingWebhookConfiguration", "name", b.cfg.Validating)
	return nil
}
