package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/kube/inject"
	"github.com/trellismesh/trellis/internal/kube/leader"
	"github.com/trellismesh/trellis/internal/kube/rootcm"
	"github.com/trellismesh/trellis/internal/kube/status"
	"github.com/trellismesh/trellis/internal/kube/webhook"
	"github.com/trellismesh/trellis/internal/model"
)

// WebhookConfig configures the admission webhooks served on a cluster
// (package kube/webhook).
type WebhookConfig struct {
	// Address is the webhook server's listen address (default ":15017").
	Address string
	// Injector is the sidecar injection configuration. Its TrustDomain and
	// ClusterDomain default to the control plane's.
	Injector inject.Config
	// NativeSidecarAuto sets Injector.NativeSidecar from the API server's
	// version: native sidecars from Kubernetes 1.29, where they are on by
	// default.
	NativeSidecarAuto bool
	// ServiceName and ServiceNamespace name the Service the API server
	// reaches the webhook through; the serving certificate is issued for
	// its DNS names (defaults "istiod" and the system namespace).
	ServiceName, ServiceNamespace string
	// IPs are extra IP SANs of the serving certificate (a webhook
	// registered by URL, as in tests).
	IPs []net.IP
	// MutatingName and ValidatingName are the webhook configurations whose
	// caBundle the leader keeps current (defaults: the revision's,
	// webhook.MutatingNameFor and ValidatingNameFor of Injector.Revision).
	MutatingName, ValidatingName string
	// BundleInterval is how often the leader checks the caBundle (default
	// 1 minute).
	BundleInterval time.Duration
}

// LeaderConfig configures leader election on a cluster (package
// kube/leader).
type LeaderConfig struct {
	// Identity of this replica (default: host name and process id).
	Identity string
	// Lease is the Lease's name in the system namespace (default
	// leader.DefaultLease).
	Lease string
	// LeaseDuration, RenewDeadline, RetryPeriod (defaults 15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// RootInterval is how often the leader checks the CA's roots for a
	// change to publish (default 5s).
	RootInterval time.Duration
	// StatusInterval is how often the leader compares the analysis with
	// the Istio objects' status.validationMessages (default
	// status.DefaultInterval).
	StatusInterval time.Duration
}

// checkKubeConfig checks the cluster-only settings in New.
func checkKubeConfig(cfg *Config) error {
	if cfg.Webhook == nil {
		return nil
	}
	if cfg.Kube == nil {
		return errors.New("webhooks need a cluster")
	}
	if cfg.SecureGRPCAddress == "" {
		return errors.New("webhooks need the CA (their serving certificate comes from it): set the secure gRPC address")
	}
	w := *cfg.Webhook
	if w.Address == "" {
		w.Address = webhook.DefaultAddress
	}
	if w.ServiceName == "" {
		w.ServiceName = "istiod"
	}
	if w.ServiceNamespace == "" {
		w.ServiceNamespace = cfg.SystemNamespace
	}
	if w.MutatingName == "" {
		w.MutatingName = webhook.MutatingNameFor(w.Injector.Revision)
	}
	if w.ValidatingName == "" {
		w.ValidatingName = webhook.ValidatingNameFor(w.Injector.Revision)
	}
	if w.Injector.ClusterDomain == "" {
		w.Injector.ClusterDomain = cfg.DomainSuffix
	}
	// Check the injection configuration now rather than at Run.
	if _, err := inject.New(w.Injector); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	cfg.Webhook = &w
	return nil
}

// webhookServer builds the webhook server once the CA exists: the
// injector (native sidecars decided from the API server's version when
// asked), certificates for the webhook Service's names, and the server.
func (s *Server) webhookServer(authority *ca.Authority) (*webhook.Server, *webhook.Certs, error) {
	w := s.cfg.Webhook
	icfg := w.Injector
	if icfg.TrustDomain == "" {
		icfg.TrustDomain = authority.TrustDomain()
	}
	if w.NativeSidecarAuto {
		v, err := s.cfg.Kube.Kube.Discovery().ServerVersion()
		if err != nil {
			return nil, nil, fmt.Errorf("webhook: reading the API server's version for native sidecars: %w", err)
		}
		native, err := supportsNativeSidecars(v.GitVersion)
		if err != nil {
			return nil, nil, fmt.Errorf("webhook: %w", err)
		}
		icfg.NativeSidecar = native
		s.log.Info("webhook: native sidecars", "apiserver", v.GitVersion, "enabled", native)
	}
	injector, err := inject.New(icfg)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook: %w", err)
	}
	certs, err := webhook.NewCerts(webhook.CertsConfig{
		Authority: authority,
		DNSNames:  webhook.ServiceDNSNames(w.ServiceName, w.ServiceNamespace),
		IPs:       w.IPs,
		Logger:    s.log.With("component", "webhook"),
	})
	if err != nil {
		return nil, nil, err
	}
	srv, err := webhook.New(webhook.Config{Address: w.Address, Injector: injector, Certs: certs, Logger: s.log.With("component", "webhook")})
	if err != nil {
		return nil, nil, err
	}
	return srv, certs, nil
}

// supportsNativeSidecars reports whether an API server of version v
// (GitVersion, "v1.31.4") runs native sidecars by default (1.29 and later).
func supportsNativeSidecars(v string) (bool, error) {
	pv, err := version.ParseGeneric(v)
	if err != nil {
		return false, fmt.Errorf("API server version %q: %w", v, err)
	}
	return pv.AtLeast(version.MajorMinor(1, 29)), nil
}

// runLeader campaigns for the Lease and, while leading, runs the writers:
// the status writer (kube/status) always, and with the CA the root
// ConfigMap publisher and (with webhooks) the caBundle syncer. Run starts
// it on every cluster, with or without the CA (authority nil). Every
// replica serves; only the leader writes.
func (s *Server) runLeader(ctx context.Context, authority *ca.Authority) error {
	lc := s.cfg.Leader
	id := lc.Identity
	if id == "" {
		host, _ := os.Hostname()
		id = host + "-" + strconv.Itoa(os.Getpid())
	}
	el, err := leader.New(leader.Config{
		Client: s.cfg.Kube.Kube, Namespace: s.cfg.SystemNamespace, Name: lc.Lease, Identity: id,
		LeaseDuration: lc.LeaseDuration, RenewDeadline: lc.RenewDeadline, RetryPeriod: lc.RetryPeriod,
		Logger: s.log.With("component", "leader"),
	})
	if err != nil {
		return err
	}
	s.elector.Store(el)
	return el.Run(ctx, func(lctx context.Context) {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { s.runStatus(lctx) })
		if authority == nil {
			return
		}
		roots := func() []byte { return authority.Roots().PEM() }
		pub, err := rootcm.New(rootcm.Config{Client: s.cfg.Kube.Kube, Roots: roots, Interval: lc.RootInterval, Logger: s.log.With("component", "root-configmap")})
		if err == nil {
			wg.Go(func() {
				if err := pub.Run(lctx); err != nil {
					s.log.Error("root ConfigMap publisher stopped", "err", err)
				}
			})
		} else {
			s.log.Error("root ConfigMap publisher", "err", err)
		}
		if w := s.cfg.Webhook; w != nil {
			bs, err := webhook.NewBundleSyncer(webhook.BundleConfig{
				Client: s.cfg.Kube.Kube, Mutating: w.MutatingName, Validating: w.ValidatingName,
				Bundle: roots, Interval: w.BundleInterval, Logger: s.log.With("component", "webhook-cabundle"),
			})
			if err == nil {
				wg.Go(func() { _ = bs.Run(lctx) })
			} else {
				s.log.Error("webhook caBundle syncer", "err", err)
			}
		}
	})
}

// runStatus writes the analysis of the cluster's Istio objects into their
// status while this replica leads (ctx). It waits for the first snapshot,
// so that a new leader never clears messages for lack of input.
func (s *Server) runStatus(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-s.ready:
	}
	w, err := status.New(status.Config{
		Dynamic: s.cfg.Kube.Dynamic, Informers: s.inf, Messages: s.analysis(),
		Interval: s.cfg.Leader.StatusInterval, Logger: s.log.With("component", "status"),
	})
	if err != nil {
		s.log.Error("status writer", "err", err)
		return
	}
	if err := w.Run(ctx); err != nil {
		s.log.Error("status writer stopped", "err", err)
	}
}

// analysis returns a function giving the analysis of the latest snapshot
// and the store's problems, recomputed only when either has changed. The
// function is not safe for concurrent use (the status writer calls it
// from one goroutine).
func (s *Server) analysis() func() []analysis.Message {
	var (
		snap     *model.Snapshot
		problems []store.Problem
		msgs     []analysis.Message
	)
	return func() []analysis.Message {
		sn, ps := s.Snapshot(), s.Problems()
		if sn == snap && slices.Equal(ps, problems) {
			return msgs
		}
		snap, problems = sn, ps
		msgs = analysis.Analyze(analysis.Input{Snapshot: sn, Problems: ps})
		return msgs
	}
}

// Leading reports whether this replica is the cluster's leader (false
// without a cluster, or before the first election).
func (s *Server) Leading() bool {
	el := s.elector.Load()
	return el != nil && el.Leading()
}

// WebhookAddr returns the webhook server's address once it listens (nil
// without webhooks, or before).
func (s *Server) WebhookAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhookAddr
}
