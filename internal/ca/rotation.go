package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
)

// Phase is where a root rotation stands.
type Phase int

const (
	// Stable: one trusted root, the one the CA issues under.
	Stable Phase = iota
	// NewRootTrusted (step 1 done): a new root is staged and trusted
	// alongside the issuing one; certificates are still issued under the old.
	NewRootTrusted
	// NewRootIssuing (step 2 done): certificates are issued under the new
	// root; the old root is still trusted so certificates it signed keep
	// verifying until they expire or are renewed.
	NewRootIssuing
)

func (p Phase) String() string {
	switch p {
	case Stable:
		return "stable"
	case NewRootTrusted:
		return "new-root-trusted"
	case NewRootIssuing:
		return "new-root-issuing"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Rotation is the trust state of the CA: the root it issues under, a root
// staged for the next rotation, and the ordered trust bundle. It is a value;
// each step returns the next state and the caller persists it (root-cert.pem
// is Trusted.PEM(); the staged issuer lives in the next/ directory, see
// doc.go).
//
// Invariants (Check): Issuing is first in Trusted; Staged, when set, is in
// Trusted, last, and differs from Issuing.
//
//	Stable ──Stage(new)──► NewRootTrusted ──Promote()──► NewRootIssuing ──Retire()──► Stable
//	[old]                  [old, new]                     [new, old]                   [new]
type Rotation struct {
	Issuing *x509.Certificate
	Staged  *x509.Certificate
	Trusted Bundle
}

// NewRotation returns the state of a CA that issues under root and trusts
// the given bundle (root is moved to the front).
func NewRotation(root *x509.Certificate, trusted Bundle) Rotation {
	return Rotation{Issuing: root, Trusted: trusted.Front(root)}
}

// Phase derives the rotation phase from the state.
func (r Rotation) Phase() Phase {
	switch {
	case r.Staged != nil:
		return NewRootTrusted
	case r.Trusted.Len() > 1:
		return NewRootIssuing
	default:
		return Stable
	}
}

// Check verifies the invariants.
func (r Rotation) Check() error {
	if r.Issuing == nil {
		return errors.New("rotation: no issuing root")
	}
	certs := r.Trusted.Certs()
	if len(certs) == 0 || !bytes.Equal(certs[0].Raw, r.Issuing.Raw) {
		return errors.New("rotation: the issuing root is not first in the trust bundle")
	}
	if r.Staged != nil {
		if bytes.Equal(r.Staged.Raw, r.Issuing.Raw) {
			return errors.New("rotation: the staged root is the issuing root")
		}
		if !bytes.Equal(certs[len(certs)-1].Raw, r.Staged.Raw) {
			return errors.New("rotation: the staged root is not last in the trust bundle")
		}
	}
	return nil
}

// Stage is step 1: trust root alongside the issuing one. It is refused while
// a rotation is in progress (a staged root, or an old root not yet retired):
// at most two roots are trusted at a time.
func (r Rotation) Stage(root *x509.Certificate) (Rotation, error) {
	if err := r.Check(); err != nil {
		return r, err
	}
	if p := r.Phase(); p != Stable {
		return r, fmt.Errorf("rotation: cannot stage a new root in phase %s; finish the rotation in progress first", p)
	}
	if root == nil || !root.IsCA {
		return r, errors.New("rotation: the staged root is not a CA certificate")
	}
	if bytes.Equal(root.Raw, r.Issuing.Raw) {
		return r, errors.New("rotation: the staged root is already the issuing root")
	}
	return Rotation{Issuing: r.Issuing, Staged: root, Trusted: r.Trusted.With(root)}, nil
}

// Promote is step 2: issue under the staged root. The old root stays
// trusted (now second).
func (r Rotation) Promote() (Rotation, error) {
	if err := r.Check(); err != nil {
		return r, err
	}
	if r.Staged == nil {
		return r, fmt.Errorf("rotation: nothing staged to promote (phase %s)", r.Phase())
	}
	return Rotation{Issuing: r.Staged, Trusted: r.Trusted.Front(r.Staged)}, nil
}

// Retire is step 3: drop every root but the issuing one. Call it once the
// certificates signed under the old root have been renewed (a workload
// certificate's lifetime after Promote).
func (r Rotation) Retire() (Rotation, error) {
	if err := r.Check(); err != nil {
		return r, err
	}
	if r.Staged != nil {
		return r, errors.New("rotation: a root is staged; promote it before retiring the old one")
	}
	if r.Trusted.Len() < 2 {
		return r, errors.New("rotation: no old root to retire")
	}
	return Rotation{Issuing: r.Issuing, Trusted: NewBundle(r.Issuing)}, nil
}
