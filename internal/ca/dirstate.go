package ca

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// NextDir is the subdirectory of a CA directory that holds the staged
// issuer's four files between Stage and Promote.
const NextDir = "next"

// Pending names a rotation step that a crash interrupted; running the
// named step again completes it.
type Pending string

const (
	// PendingNone: the directory is at a step boundary.
	PendingNone Pending = ""
	// PendingStage: next/ is written but root-cert.pem does not trust its
	// root yet (crash inside Stage). Run stage again.
	PendingStage Pending = "stage"
	// PendingPromote: the issuer's files are being replaced by next/'s
	// (crash inside Promote); the state reads as promoted. Run promote again.
	PendingPromote Pending = "promote"
)

// State is a CA directory as read from disk: the issuer in effect, the
// staged issuer (next/) when a root is staged, and a step a crash left
// unfinished. The issuer is what the control plane issues with;
// Issuer.Trusted is root-cert.pem, the bundle proxies trust.
type State struct {
	Dir     string
	Issuer  *Issuer
	Staged  *Issuer // nil unless Phase is NewRootTrusted
	Pending Pending
}

// Rotation returns the rotation value of the state.
func (s *State) Rotation() Rotation {
	r := Rotation{Issuing: s.Issuer.Root, Trusted: s.Issuer.Trusted}
	if s.Staged != nil {
		r.Staged = s.Staged.Root
	}
	return r
}

// Phase is the rotation phase of the state.
func (s *State) Phase() Phase { return s.Rotation().Phase() }

// Load reads a CA directory, next/ included, and recovers the view of a
// step a crash interrupted (see doc.go, "Root rotation on disk"): it
// never writes. A directory that no step could have left is an error
// naming the file and the reason.
func Load(dir string, now time.Time) (*State, error) {
	st := &State{Dir: dir}
	next, nextErr := loadNext(dir, now)
	main, mainErr := LoadDir(dir, now)
	switch {
	case mainErr == nil:
		st.Issuer = main
	case next != nil && promoting(dir, next):
		// Promote replaced ca-key.pem (and maybe more) but not all of the
		// issuer's files: next/ is complete and is the issuer now.
		trusted, err := readRoots(dir, now)
		if err != nil {
			return nil, err
		}
		st.Issuer = next.withTrusted(trusted)
		st.Pending = PendingPromote
		return st, nil
	default:
		return nil, mainErr
	}
	if nextErr != nil {
		return nil, nextErr
	}
	if next == nil {
		return st, nil
	}
	switch {
	case bytes.Equal(next.Cert.Raw, main.Cert.Raw):
		// Promote wrote every file but had not removed next/ yet.
		st.Pending = PendingPromote
	case !main.Trusted.Contains(next.Root):
		// Stage wrote next/ but not root-cert.pem yet.
		st.Pending = PendingStage
	case bytes.Equal(next.Root.Raw, main.Root.Raw):
		return nil, &FileError{Path: filepath.Join(dir, NextDir, CertFile),
			Reason: "the staged issuer is under the issuing root; a rotation needs a new root (remove next/ and stage again)"}
	default:
		st.Staged = next
		// Stage appends the new root last; an operator-edited bundle
		// might not: the rotation's invariants name what is wrong.
		if err := st.Rotation().Check(); err != nil {
			return nil, &FileError{Path: filepath.Join(dir, RootFile), Reason: err.Error()}
		}
	}
	return st, nil
}

// loadNext reads next/ when it exists (nil, nil when it does not).
func loadNext(dir string, now time.Time) (*Issuer, error) {
	nd := filepath.Join(dir, NextDir)
	if _, err := os.Lstat(nd); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, &FileError{Path: nd, Reason: "checking", Err: err}
	}
	is, err := LoadDir(nd, now)
	if err != nil {
		return nil, fmt.Errorf("staged issuer: %w", err)
	}
	return is, nil
}

// promoting reports whether the issuer's key in dir is next's: Promote
// writes ca-key.pem before ca-cert.pem, so a key that matches the staged
// certificate means Promote has started.
func promoting(dir string, next *Issuer) bool {
	data, err := readLimited(filepath.Join(dir, KeyFile))
	if err != nil {
		return false
	}
	key, err := parseKey(data)
	if err != nil {
		return false
	}
	return keyMatches(key, next.Cert.PublicKey) == nil
}

// readRoots reads and checks root-cert.pem alone.
func readRoots(dir string, now time.Time) (Bundle, error) {
	path := filepath.Join(dir, RootFile)
	data, err := readLimited(path)
	if err != nil {
		return Bundle{}, err
	}
	roots, err := parseCerts(data)
	if err != nil {
		return Bundle{}, &FileError{Path: path, Reason: "parsing", Err: err}
	}
	if len(roots) == 0 {
		return Bundle{}, &FileError{Path: path, Reason: "no certificate"}
	}
	for i, r := range roots {
		if err := checkCA(r, now); err != nil {
			return Bundle{}, &FileError{Path: path, Reason: fmt.Sprintf("certificate %d (%s): %v", i+1, r.Subject, err)}
		}
	}
	return NewBundle(roots...), nil
}
