package cacert

import (
	"bytes"
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/trellismesh/trellis/internal/ca"
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	Client    kubernetes.Interface
	Namespace string
	Authority *ca.Authority
	// Interval between reads (default 10s).
	Interval time.Duration
	Logger   *slog.Logger
}

// Follower keeps a running Authority in step with the CA Secrets: every
// Interval it reads them (Read, never creating) and, when the issuer or the
// trust bundle differ, swaps the new issuer in. A Secret that does not load,
// or both Secrets gone, is logged and the current issuer keeps serving.
// Run's goroutine owns its state.
type Follower struct {
	cfg    FollowerConfig
	failed string // the last error logged, so it is logged once
}

// NewFollower fills defaults. It does no I/O.
func NewFollower(cfg FollowerConfig) *Follower {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Follower{cfg: cfg}
}

// Run polls until ctx is done.
func (f *Follower) Run(ctx context.Context) {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.Check(ctx)
		}
	}
}

// Check reads the Secrets once and applies a changed issuer; it reports
// whether it changed.
func (f *Follower) Check(ctx context.Context) bool {
	l, err := Read(ctx, f.cfg.Client, f.cfg.Namespace, time.Now())
	if err != nil {
		if ctx.Err() == nil && err.Error() != f.failed {
			f.cfg.Logger.Error("CA Secret does not load; the current issuer keeps serving", "namespace", f.cfg.Namespace, "err", err)
			f.failed = err.Error()
		}
		return false
	}
	f.failed = ""
	cur := f.cfg.Authority.Issuer()
	if bytes.Equal(cur.Cert.Raw, l.Issuer.Cert.Raw) && cur.Trusted.Equal(l.Issuer.Trusted) {
		return false
	}
	if err := f.cfg.Authority.SetIssuer(l.Issuer); err != nil {
		f.cfg.Logger.Error("applying the CA Secret", "secret", l.Secret, "err", err)
		return false
	}
	f.cfg.Logger.Info("CA changed", "secret", l.Secret, "form", l.Form, "issuer", l.Issuer.Cert.Subject.String(),
		"root", ca.Fingerprint(l.Issuer.Root), "trustedRoots", l.Issuer.Trusted.Len())
	return true
}
