package identity

import (
	"context"
	"math/rand/v2"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// runState is owned by Run's goroutine.
type runState struct {
	failures   int       // consecutive failed requests
	forceToken bool      // the CA refused the certificate: prove with the token
	rootStamp  fileStamp // RootCertFile as last read (or tried)
	rootErr    error     // why the last read failed, nil after a good one
}

// fileStamp identifies a version of a file: the file itself (a rename
// within one tick of the file system's clock is still seen), its
// modification time and size.
type fileStamp struct {
	fi os.FileInfo
}

func (a fileStamp) equal(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.ModTime().Equal(b.fi.ModTime()) && a.fi.Size() == b.fi.Size()
}

// Run requests the first certificate at once, then renews each at half its
// remaining lifetime (±RenewJitter), retrying failures with exponential
// back-off and jitter while the current certificate keeps being served;
// and it reloads RootCertFile when it changes. It returns nil when ctx
// ends; failures are logged and counted, never fatal.
func (m *Manager) Run(ctx context.Context) error {
	var st runState
	m.reloadRoots(&st)
	timer := time.NewTimer(0)
	defer timer.Stop()
	tick := time.NewTicker(m.cfg.RootCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			m.reloadRoots(&st)
		case <-timer.C:
			m.reloadRoots(&st)
			timer.Reset(m.request(ctx, &st))
		}
	}
}

// request makes one attempt and returns the delay until the next one.
func (m *Manager) request(ctx context.Context, st *runState) time.Duration {
	mat := m.cur.Load()
	now := m.cfg.Now()
	how := byToken
	if mat.cert != nil && now.Before(mat.notAfter) && !st.forceToken {
		how = byCert
	}
	var err error
	if len(anchors(mat)) == 0 {
		err = &noRootsError{file: m.cfg.RootCertFile, err: st.rootErr}
	}
	if err == nil {
		cert, root, ferr := m.fetch(ctx, mat, how)
		if ferr == nil {
			next := *m.cur.Load()
			next.cert, next.notAfter, next.caRoot = cert, cert.Leaf.NotAfter, root
			// Metrics first: whoever sees the new certificate (readiness)
			// also sees it counted.
			if mat.cert == nil {
				m.cfg.Metrics.Issued()
			} else {
				m.cfg.Metrics.Renewed()
			}
			m.cfg.Metrics.Expiry(cert.Leaf.NotAfter)
			m.publish(&next)
			st.failures, st.forceToken = 0, false
			in := renewIn(cert.Leaf.NotBefore, cert.Leaf.NotAfter, m.cfg.Now(), rand.Float64())
			m.log.Info("workload certificate obtained", "by", how.String(), "serial", cert.Leaf.SerialNumber.Text(16),
				"notAfter", cert.Leaf.NotAfter, "renewIn", in.Round(time.Millisecond))
			return in
		}
		err = ferr
	}
	if ctx.Err() != nil {
		return time.Hour // Run returns at once
	}
	st.failures++
	m.cfg.Metrics.Failed()
	if how == byCert && status.Code(err) == codes.Unauthenticated {
		// The CA no longer accepts the certificate (a retired root, a
		// revoked identity): the bootstrap token is the other proof.
		st.forceToken = true
	}
	d := backoff(m.cfg.MinBackoff, m.cfg.MaxBackoff, st.failures, rand.Float64())
	if mat.cert != nil {
		if left := mat.notAfter.Sub(now); left > 0 && d > left/2 && left/2 >= m.cfg.MinBackoff {
			d = left / 2 // retry before the current certificate runs out
		}
	}
	m.log.Warn("workload certificate request failed; retrying", "by", how.String(), "failures", st.failures,
		"retryIn", d.Round(time.Millisecond), "servingUntil", mat.notAfter, "err", err)
	return d
}

// renewIn is the delay until renewal: half of the lifetime left at
// receipt (from NotBefore when the CA's clock is ahead; CAs backdate
// NotBefore for skew, which must not count), moved by up to ±RenewJitter
// with r in [0, 1).
func renewIn(notBefore, notAfter, now time.Time, r float64) time.Duration {
	start := now
	if notBefore.After(now) {
		start = notBefore
	}
	half := float64(notAfter.Sub(start)) / 2
	at := start.Add(time.Duration(half * (1 + (2*r-1)*RenewJitter)))
	if d := at.Sub(now); d > 0 {
		return d
	}
	return 0
}

// backoff is min·2^(failures-1), capped at max, then scaled into
// [½, 1) of that by r in [0, 1) (equal jitter), never below min/2.
func backoff(min, max time.Duration, failures int, r float64) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return time.Duration(float64(d) * (0.5 + r/2))
}

// reloadRoots re-reads RootCertFile when its size or modification time
// changed; an unreadable or invalid file keeps the last good roots.
func (m *Manager) reloadRoots(st *runState) {
	fi, err := os.Stat(m.cfg.RootCertFile)
	if err != nil {
		if st.rootErr == nil || st.rootStamp.fi != nil {
			m.log.Warn("root certificate file unreadable; keeping the last good roots", "file", m.cfg.RootCertFile, "err", err)
		}
		st.rootStamp, st.rootErr = fileStamp{}, err
		return
	}
	stamp := fileStamp{fi}
	if stamp.equal(st.rootStamp) {
		return
	}
	st.rootStamp = stamp
	roots, err := parseRoots(m.cfg.RootCertFile)
	if err != nil {
		st.rootErr = err
		m.log.Warn("root certificate file rejected; keeping the last good roots", "file", m.cfg.RootCertFile, "err", err)
		return
	}
	st.rootErr = nil
	next := *m.cur.Load()
	next.fileRoots = roots
	m.publish(&next)
	m.log.Info("root certificates loaded", "file", m.cfg.RootCertFile, "roots", len(roots))
}

// noRootsError says why nothing can authenticate the CA yet.
type noRootsError struct {
	file string
	err  error
}

func (e *noRootsError) Error() string {
	if e.err == nil {
		return "no root certificate to authenticate the CA: " + e.file + " not read yet"
	}
	return "no root certificate to authenticate the CA: " + e.err.Error()
}

func (e *noRootsError) Unwrap() error { return e.err }
