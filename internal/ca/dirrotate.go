package ca

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Staging says where a staged issuer comes from: generated (a new
// self-signed root, the default) or imported (an operator's CA files, read
// and verified with ParseIssuer).
type Staging struct {
	// Generate: a self-signed root for TrustDomain (see NewSelfSigned).
	Generate SelfSigned
	// Import, when its Cert is set, is the plugged-in material: Cert is the
	// signing certificate, Key its key, Chain the certificates up to the
	// root, Root the new root (root-cert.pem of next/).
	Import PEMFiles
	// ImportLabel names the imported material in errors (the flags or
	// file names it came from).
	ImportLabel string
}

// Result says what a rotation step did.
type Result struct {
	Before, After Phase
	// Changed is false when the step had already been done (the call was
	// a repetition) and nothing was written.
	Changed bool
	State   *State
}

// fsOps are the writes of the rotation steps, one call each; tests
// replace them to stop a step after any number of writes (a crash).
type fsOps struct {
	writeFile func(path string, data []byte, mode os.FileMode) error
	mkdirTemp func(dir, pattern string) (string, error)
	rename    func(from, to string) error
	removeAll func(path string) error
	syncDir   func(dir string) error
}

func osOps() fsOps {
	return fsOps{
		writeFile: writeAtomic,
		mkdirTemp: os.MkdirTemp,
		rename:    os.Rename,
		removeAll: os.RemoveAll,
		syncDir:   syncDir,
	}
}

// Stage is step 1 on disk: it writes the new issuer to <dir>/next/ (into
// a temporary directory renamed into place) and then root-cert.pem with
// the new root appended. Repeating it once done changes nothing; after a
// crash it completes the step (reusing next/ when it was written).
func Stage(dir string, src Staging, now time.Time) (*Result, error) {
	return stage(osOps(), dir, src, now)
}

// Promote is step 2 on disk: root-cert.pem becomes [new, old], then
// ca-key.pem, ca-cert.pem and cert-chain.pem are replaced by next/'s,
// then next/ is removed. Load reads a directory left in between as
// promoted (PendingPromote), and Promote run again finishes it.
func Promote(dir string, now time.Time) (*Result, error) {
	return promote(osOps(), dir, now)
}

// Retire is step 3 on disk: root-cert.pem keeps only the issuing root.
// Call it once every certificate issued under the old root was renewed
// (the longest workload certificate lifetime after Promote).
func Retire(dir string, now time.Time) (*Result, error) {
	return retire(osOps(), dir, now)
}

func stage(o fsOps, dir string, src Staging, now time.Time) (*Result, error) {
	st, err := Load(dir, now)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if err := removeLeftovers(o, dir); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	res := &Result{Before: st.Phase(), State: st}
	switch {
	case st.Pending == PendingPromote:
		return nil, fmt.Errorf("stage: CA directory %s: a promotion was interrupted; run promote to finish it first", dir)
	case st.Staged != nil:
		if src.Import.Cert != nil && !sameImport(st.Staged, src.Import) {
			return nil, &FileError{Path: filepath.Join(dir, NextDir), Reason: "another issuer is already staged; promote it (and retire the old root) or remove next/ before staging a different one"}
		}
		res.After = res.Before
		return res, nil
	case st.Pending == PendingStage:
		// next/ is complete: trust its root (below).
	default:
		if p := st.Phase(); p != Stable {
			return nil, fmt.Errorf("stage: CA directory %s is in phase %s; retire the old root before staging another", dir, p)
		}
		next, err := stagedIssuer(src, st, now)
		if err != nil {
			return nil, fmt.Errorf("stage: %w", err)
		}
		if err := writeNext(o, dir, next); err != nil {
			return nil, fmt.Errorf("stage: %w", err)
		}
	}
	next, err := loadNext(dir, now)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if src.Import.Cert != nil && !sameImport(next, src.Import) {
		return nil, &FileError{Path: filepath.Join(dir, NextDir), Reason: "an interrupted stage left another issuer in next/; run stage without imported files to finish it, or remove next/"}
	}
	rot, err := st.Rotation().Stage(next.Root)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if err := o.writeFile(filepath.Join(dir, RootFile), rot.Trusted.PEM(), 0o644); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	return done(o, dir, now, res)
}

func promote(o fsOps, dir string, now time.Time) (*Result, error) {
	st, err := Load(dir, now)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if err := removeLeftovers(o, dir); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	res := &Result{Before: st.Phase(), State: st}
	var next *Issuer
	switch {
	case st.Pending == PendingStage:
		return nil, fmt.Errorf("promote: CA directory %s: staging was interrupted (next/ is written, root-cert.pem does not trust it yet); run stage to finish it, and give proxies the new bundle, first", dir)
	case st.Pending == PendingPromote:
		if next, err = loadNext(dir, now); err != nil {
			return nil, fmt.Errorf("promote: %w", err)
		}
	case st.Staged != nil:
		next = st.Staged
	case st.Phase() == NewRootIssuing:
		res.After = res.Before // promoted already
		return res, nil
	default:
		return nil, fmt.Errorf("promote: CA directory %s: nothing staged (phase %s); run stage first", dir, st.Phase())
	}
	// The bundle: the new root first, every other trusted root kept.
	trusted := st.Issuer.Trusted.Front(next.Root)
	files, err := next.withTrusted(trusted).PEM()
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	// Order matters: Load recognises an interrupted promotion by ca-key.pem
	// matching next/ca-cert.pem, so the key goes before the certificate,
	// and next/ stays until every file is written.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{RootFile, files.Root, 0o644},
		{KeyFile, files.Key, 0o600},
		{CertFile, files.Cert, 0o644},
		{ChainFile, files.Chain, 0o644},
	} {
		path := filepath.Join(dir, f.name)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, f.data) {
			continue
		}
		if err := o.writeFile(path, f.data, f.mode); err != nil {
			return nil, fmt.Errorf("promote: %w", err)
		}
	}
	if err := o.syncDir(dir); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if err := removeNext(o, dir); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	return done(o, dir, now, res)
}

func retire(o fsOps, dir string, now time.Time) (*Result, error) {
	st, err := Load(dir, now)
	if err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	if err := removeLeftovers(o, dir); err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	res := &Result{Before: st.Phase(), State: st}
	switch {
	case st.Pending != PendingNone:
		return nil, fmt.Errorf("retire: CA directory %s: the %s step was interrupted; run %s to finish it first", dir, st.Pending, st.Pending)
	case st.Staged != nil:
		return nil, fmt.Errorf("retire: CA directory %s: a root is staged (phase %s); promote it before retiring the old root", dir, st.Phase())
	case st.Phase() == Stable:
		res.After = res.Before // one root: retired already
		return res, nil
	}
	rot, err := st.Rotation().Retire()
	if err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	if err := o.writeFile(filepath.Join(dir, RootFile), rot.Trusted.PEM(), 0o644); err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	return done(o, dir, now, res)
}

// done syncs dir and reads the state the step left.
func done(o fsOps, dir string, now time.Time, res *Result) (*Result, error) {
	if err := o.syncDir(dir); err != nil {
		return nil, err
	}
	st, err := Load(dir, now)
	if err != nil {
		return nil, fmt.Errorf("reading the CA directory after the step: %w", err)
	}
	res.State, res.After, res.Changed = st, st.Phase(), true
	return res, nil
}

// stagedIssuer generates or imports the next issuer and checks it can
// follow the current one.
func stagedIssuer(src Staging, st *State, now time.Time) (*Issuer, error) {
	var next *Issuer
	if src.Import.Cert != nil {
		label := src.ImportLabel
		if label == "" {
			label = "imported CA"
		}
		is, err := ParseIssuer(label, src.Import, now)
		if err != nil {
			return nil, err
		}
		// next/root-cert.pem holds the new root only; the directory's
		// bundle is what proxies trust.
		next = is.withTrusted(NewBundle(is.Root))
	} else {
		opts := src.Generate
		if opts.TrustDomain == "" && len(st.Issuer.Root.Subject.Organization) == 1 {
			opts.TrustDomain = st.Issuer.Root.Subject.Organization[0]
		}
		if opts.TrustDomain == "" {
			return nil, errors.New("no trust domain for the new root (the current root's subject has no organisation to take it from)")
		}
		is, err := NewSelfSigned(opts, now, rand.Reader)
		if err != nil {
			return nil, err
		}
		next = is
	}
	if st.Issuer.Trusted.Contains(next.Root) {
		return nil, fmt.Errorf("the new issuer's root %s is already trusted by %s; a rotation needs a new root", next.Root.Subject, filepath.Join(st.Dir, RootFile))
	}
	return next, nil
}

// sameImport reports whether the staged issuer is the imported material.
func sameImport(staged *Issuer, f PEMFiles) bool {
	certs, err := parseCerts(f.Cert)
	return err == nil && len(certs) == 1 && bytes.Equal(certs[0].Raw, staged.Cert.Raw)
}

// writeNext writes the issuer's files into a temporary directory beside
// next/ and renames it into place, so that next/ is either absent or
// complete. Leftovers of an interrupted attempt are removed first.
func writeNext(o fsOps, dir string, is *Issuer) error {
	files, err := is.PEM()
	if err != nil {
		return err
	}
	tmp, err := o.mkdirTemp(dir, "."+NextDir+".tmp-")
	if err != nil {
		return &FileError{Path: filepath.Join(dir, NextDir), Reason: "creating a temporary directory", Err: err}
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{RootFile, files.Root, 0o644},
		{ChainFile, files.Chain, 0o644},
		{KeyFile, files.Key, 0o600},
		{CertFile, files.Cert, 0o644},
	} {
		if err := o.writeFile(filepath.Join(tmp, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	if err := o.syncDir(tmp); err != nil {
		return err
	}
	if err := o.rename(tmp, filepath.Join(dir, NextDir)); err != nil {
		return &FileError{Path: filepath.Join(dir, NextDir), Reason: "renaming into place", Err: err}
	}
	return o.syncDir(dir)
}

// removeNext renames next/ aside (atomic) and deletes it.
func removeNext(o fsOps, dir string) error {
	aside := filepath.Join(dir, "."+NextDir+".old")
	if err := o.removeAll(aside); err != nil {
		return &FileError{Path: aside, Reason: "removing", Err: err}
	}
	if err := o.rename(filepath.Join(dir, NextDir), aside); err != nil {
		return &FileError{Path: filepath.Join(dir, NextDir), Reason: "moving aside", Err: err}
	}
	if err := o.syncDir(dir); err != nil {
		return err
	}
	if err := o.removeAll(aside); err != nil {
		return &FileError{Path: aside, Reason: "removing", Err: err}
	}
	return nil
}

// removeLeftovers deletes what interrupted steps leave: temporary
// directories beside next/ and temporary files beside the CA files.
func removeLeftovers(o fsOps, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return &FileError{Path: dir, Reason: "listing", Err: err}
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "."+NextDir+".") || leftoverFile(n) {
			if err := o.removeAll(filepath.Join(dir, n)); err != nil {
				return &FileError{Path: filepath.Join(dir, n), Reason: "removing a leftover of an interrupted step", Err: err}
			}
		}
	}
	return nil
}

// leftoverFile reports whether name is a temporary file of writeAtomic for
// one of the CA files.
func leftoverFile(name string) bool {
	for _, f := range []string{CertFile, KeyFile, ChainFile, RootFile} {
		if strings.HasPrefix(name, "."+f+".tmp-") {
			return true
		}
	}
	return false
}
