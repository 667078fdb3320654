package discovery

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
)

// caPollInterval is how often the CA directory is checked for a rotation
// step (`trellis ca rotate`, or an operator replacing the files).
const caPollInterval = time.Second

// caFollower keeps the running CA in step with its directory: when a file
// of the directory (or of next/) changes, it reads the directory with
// ca.Load and, if the issuer or the trust bundle differ, swaps them into
// the Authority (ca.Authority.SetIssuer). Certificates are then issued
// under the new issuer, renewals are authenticated against the new bundle,
// and the CA service re-issues its serving certificate on its next
// handshake when the issuing root changed. A directory that does not load
// is logged and the last good issuer keeps serving.
//
// The published trust bundle is the directory's root-cert.pem itself: the
// rotation steps write it, and proxies in local mode point --ca-root-cert
// at it (they re-read it when it changes). Nothing else is written here.
//
// Run's goroutine owns every field.
type caFollower struct {
	dir       string
	authority *ca.Authority
	log       *slog.Logger
	interval  time.Duration
	now       func() time.Time

	stamp  string // the files as last seen
	failed string // the stamp whose load failed (logged once)
}

func newCAFollower(dir string, a *ca.Authority, log *slog.Logger) *caFollower {
	f := &caFollower{dir: dir, authority: a, log: log.With("component", "ca-rotation"), interval: caPollInterval, now: time.Now}
	f.stamp = f.files()
	return f
}

// Run polls the directory until ctx ends. A nil follower (no CA) returns
// at once.
func (f *caFollower) Run(ctx context.Context) {
	if f == nil {
		return
	}
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.check()
		}
	}
}

// check reloads the directory when its files changed.
func (f *caFollower) check() {
	stamp := f.files()
	if stamp == f.stamp {
		return
	}
	if _, err := f.reload(); err != nil {
		if stamp != f.failed {
			f.log.Error("CA directory changed but does not load; the current issuer keeps serving", "dir", f.dir, "err", err)
			f.failed = stamp
		}
		return // retried when the files change again
	}
	f.stamp, f.failed = stamp, ""
}

// reload reads the directory and applies it; it reports whether the
// issuer or the bundle changed.
func (f *caFollower) reload() (bool, error) {
	st, err := ca.Load(f.dir, f.now())
	if err != nil {
		return false, err
	}
	cur := f.authority.Issuer()
	if bytes.Equal(cur.Cert.Raw, st.Issuer.Cert.Raw) && cur.Trusted.Equal(st.Issuer.Trusted) {
		return false, nil
	}
	if err := f.authority.SetIssuer(st.Issuer); err != nil {
		return false, fmt.Errorf("applying the CA directory %s: %w", f.dir, err)
	}
	f.log.Info("CA rotation applied", "dir", f.dir, "phase", st.Phase().String(), "pending", string(st.Pending),
		"issuer", st.Issuer.Cert.Subject.String(), "root", ca.Fingerprint(st.Issuer.Root), "trustedRoots", st.Issuer.Trusted.Len(),
		"rootChanged", !bytes.Equal(cur.Root.Raw, st.Issuer.Root.Raw))
	return true, nil
}

// files identifies the current version of the directory's CA files: the
// size and modification time of each (missing ones included). The steps
// replace files by renames, which change the modification time.
func (f *caFollower) files() string {
	var b strings.Builder
	for _, d := range []string{f.dir, filepath.Join(f.dir, ca.NextDir)} {
		for _, name := range []string{ca.CertFile, ca.KeyFile, ca.ChainFile, ca.RootFile} {
			p := filepath.Join(d, name)
			fi, err := os.Stat(p)
			if err != nil {
				fmt.Fprintf(&b, "%s:-;", p)
				continue
			}
			fmt.Fprintf(&b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}
