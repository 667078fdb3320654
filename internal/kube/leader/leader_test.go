package leader

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellismesh/trellis/internal/kube/kubetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// takeover bounds the hand-over after the leader stops (it releases the
// Lease, so the other replica needs one RetryPeriod; a loaded machine
// gets slack).
const takeover = 20 * time.Second

// TestElectionAPIServer runs two replicas against one API server: exactly
// one leads, and when it stops the other takes over within a bound.
func TestElectionAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx := context.Background()
	if _, err := c.Client.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	type replica struct {
		e      *Elector
		cancel context.CancelFunc
		done   chan error
		leads  atomic.Int32 // times lead was called
		active atomic.Bool  // inside lead
	}
	var overlap atomic.Bool
	var replicas []*replica
	for i := range 2 {
		e, err := New(Config{
			Client: c.Client.Kube, Namespace: "istio-system", Identity: fmt.Sprintf("replica-%d", i),
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{e: e, done: make(chan error, 1)}
		rctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		replicas = append(replicas, r)
		go func() {
			r.done <- e.Run(rctx, func(lctx context.Context) {
				r.leads.Add(1)
				r.active.Store(true)
				for _, o := range replicas {
					if o != r && o.active.Load() {
						overlap.Store(true)
					}
				}
				<-lctx.Done()
				r.active.Store(false)
			})
		}()
	}
	stop := func(r *replica) {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("%s: Run: %v", r.e.Identity(), err)
			}
		case <-time.After(takeover):
			t.Fatalf("%s: Run did not return after cancel", r.e.Identity())
		}
	}
	defer func() {
		for _, r := range replicas {
			if r.cancel != nil {
				r.cancel()
			}
		}
	}()

	leader := waitLeader(t, replicas[0].e, replicas[1].e)
	// Hold for a few renewals: still exactly one.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if replicas[0].e.Leading() && replicas[1].e.Leading() {
			t.Fatal("both replicas lead")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var old, other *replica
	for _, r := range replicas {
		if r.e == leader {
			old = r
		} else {
			other = r
		}
	}
	if other.leads.Load() != 0 {
		t.Fatalf("%s led while %s held the Lease", other.e.Identity(), old.e.Identity())
	}
	start := time.Now()
	stop(old)
	old.cancel = nil
	if got := waitLeader(t, other.e); got != other.e {
		t.Fatal("the remaining replica did not take over")
	}
	t.Logf("take-over after %v", time.Since(start))
	if overlap.Load() {
		t.Error("two replicas ran the leader's work at once")
	}
	lease, err := c.Client.Kube.CoordinationV1().Leases("istio-system").Get(ctx, DefaultLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != other.e.Identity() {
		t.Errorf("Lease holder = %v, want %s", lease.Spec.HolderIdentity, other.e.Identity())
	}
	stop(other)
	other.cancel = nil
}

// waitLeader waits until exactly one of es leads and returns it.
func waitLeader(t *testing.T, es ...*Elector) *Elector {
	t.Helper()
	deadline := time.Now().Add(takeover)
	for time.Now().Before(deadline) {
		var leading []*Elector
		for _, e := range es {
			if e.Leading() {
				leading = append(leading, e)
			}
		}
		if len(leading) == 1 {
			return leading[0]
		}
		if len(leading) > 1 {
			t.Fatal("more than one leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no leader within %v", takeover)
	return nil
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(Config{Namespace: "x", Identity: "y"}); err == nil {
		t.Error("New without a client succeeded")
	}
}
