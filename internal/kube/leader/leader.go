package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// DefaultLease is the Lease's name in the system namespace.
const DefaultLease = "trellis-discovery-leader"

// Default timings, client-go's usual ones.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Config configures an Elector.
type Config struct {
	Client kubernetes.Interface
	// Namespace and Name of the Lease (Name default DefaultLease).
	Namespace, Name string
	// Identity of this replica (required, unique: the Pod name).
	Identity string
	// LeaseDuration, RenewDeadline, RetryPeriod: see client-go's
	// leaderelection (defaults 15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// Elector campaigns for the Lease and runs the leader's work while it
// holds it.
type Elector struct {
	cfg     Config
	leading atomic.Bool
}

// New checks cfg. It does no I/O.
func New(cfg Config) (*Elector, error) {
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Identity == "" {
		return nil, errors.New("leader election: Client, Namespace and Identity are required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultLease
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline <= 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod <= 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Elector{cfg: cfg}, nil
}

// Leading reports whether this replica holds the Lease now.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Identity is this replica's identity.
func (e *Elector) Identity() string { return e.cfg.Identity }

// Run campaigns until ctx is done. Each time it wins it calls lead with a
// context cancelled when leadership is lost, and waits for lead to return
// before campaigning again.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta(e.cfg.Namespace, e.cfg.Name),
		Client:     e.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.cfg.Identity},
	}
	log := e.cfg.Logger.With("lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
	for ctx.Err() == nil {
		// client-go starts OnStartedLeading in a goroutine of its own; it
		// only hands the leader's context over, and lead runs here, so
		// that this loop knows when it has returned.
		won := make(chan context.Context, 1)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   e.cfg.LeaseDuration,
			RenewDeadline:   e.cfg.RenewDeadline,
			RetryPeriod:     e.cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            e.cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) { won <- lctx },
				OnStoppedLeading: func() {},
				OnNewLeader: func(id string) {
					if id != e.cfg.Identity {
						log.Info("leader elected", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			le.Run(ctx) // returns when leadership is lost or ctx ends
		}()
		select {
		case lctx := <-won:
			e.leading.Store(true)
			log.Info("leading")
			lead(lctx) // lctx ends when le.Run returns
			e.leading.Store(false)
			<-ended
			log.Info("no longer leading")
		case <-ended:
		}
		select {
		case <-ctx.Done():
		case <-time.After(e.cfg.RetryPeriod):
		}
	}
	return nil
}
