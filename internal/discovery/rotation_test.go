package discovery

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
)

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCAFollower drives the follower step by step: each rotation step on
// disk reaches the Authority at the next check; a directory that does
// not load is reported once and the last good issuer keeps serving.
func TestCAFollower(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	now := time.Now()
	is, _, err := ca.LoadOrCreate(dir, ca.SelfSigned{TrustDomain: "cluster.local"}, now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(ca.Config{Issuer: is, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	f := newCAFollower(dir, a, slog.New(slog.NewTextHandler(&logs, nil)))
	old := is.Root

	f.check()
	if a.Issuer() != is {
		t.Fatal("an unchanged directory replaced the issuer")
	}
	res, err := ca.Stage(dir, ca.Staging{}, now)
	if err != nil {
		t.Fatal(err)
	}
	next := res.State.Staged.Root
	f.check()
	if got := a.Roots(); got.Len() != 2 || !got.Contains(next) || !a.Issuer().Root.Equal(old) {
		t.Fatalf("after stage: %d roots, issuing %s; want old issuing, old and new trusted", got.Len(), a.Issuer().Root.Subject)
	}
	if _, err := ca.Promote(dir, now); err != nil {
		t.Fatal(err)
	}
	f.check()
	if !a.Issuer().Root.Equal(next) || !a.Roots().Contains(old) {
		t.Fatal("after promote: want the new root issuing and the old one still trusted")
	}

	// A broken file: logged once, the issuer stays.
	certPath := filepath.Join(dir, ca.CertFile)
	good, _ := os.ReadFile(certPath)
	if err := os.WriteFile(certPath, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.check()
	f.check()
	if !a.Issuer().Root.Equal(next) {
		t.Fatal("a broken directory replaced the issuer")
	}
	if n := strings.Count(logs.String(), "does not load"); n != 1 || !strings.Contains(logs.String(), certPath) {
		t.Fatalf("broken directory logged %d times (want once, naming %s):\n%s", n, certPath, logs.String())
	}
	if err := os.WriteFile(certPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Retire(dir, now); err != nil {
		t.Fatal(err)
	}
	f.check()
	if a.Roots().Len() != 1 || a.Roots().Contains(old) {
		t.Fatal("after retire: the old root is still trusted")
	}
}

// TestCARotationLive rotates the root of a running control plane: after
// each step on disk, the CA issues, authenticates and serves under the
// new state without a restart.
func TestCARotationLive(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	s := runCA(t, caDir)
	token, _, err := bootstrap.Mint(filepath.Join(caDir, "bootstrap"), "ns1", "a")
	if err != nil {
		t.Fatal(err)
	}
	old, err := ca.Load(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if leaf := issue(t, s, caDir, token); leaf.CheckSignatureFrom(old.Issuer.Root) != nil {
		t.Fatal("first certificate not signed by the first root")
	}
	res, err := ca.Stage(caDir, ca.Staging{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	next := res.State.Staged.Root
	if _, err := ca.Promote(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "certificates issued under the new root", func() error {
		if leaf := issue(t, s, caDir, token); leaf.CheckSignatureFrom(next) != nil {
			return errors.New("still issued under the old root")
		}
		return nil
	})
	// The serving certificate follows the issuing root.
	conn, err := tls.Dial("tcp", s.SecureGRPCAddr().String(), &tls.Config{
		RootCAs: ca.NewBundle(next).Pool(), ServerName: "istiod.istio-system.svc", NextProtos: []string{"h2"},
	})
	if err != nil {
		t.Fatalf("serving certificate does not verify with the new root alone: %v", err)
	}
	conn.Close()
	if _, err := ca.Retire(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old root retired", func() error {
		st, err := ca.Load(caDir, time.Now())
		if err != nil {
			return err
		}
		if st.Issuer.Trusted.Len() != 1 {
			return fmt.Errorf("%d roots on disk", st.Issuer.Trusted.Len())
		}
		if leaf := issue(t, s, caDir, token); leaf.CheckSignatureFrom(next) != nil {
			return errors.New("not issued under the new root")
		}
		return nil
	})
}
