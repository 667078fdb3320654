package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newDir creates a self-signed CA directory at t0 and returns it with its
// root.
func newDir(t *testing.T) (string, *x509.Certificate) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	is, created, err := LoadOrCreate(dir, SelfSigned{TrustDomain: "cluster.local"}, t0)
	if err != nil || !created {
		t.Fatalf("creating the CA: %v (created %v)", err, created)
	}
	return dir, is.Root
}

// rootsOnDisk returns root-cert.pem's certificates in file order.
func rootsOnDisk(t *testing.T, dir string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, RootFile))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// issuesUnder checks that the state's issuer signs SVIDs that chain to root
// and only to root among the given candidates.
func issuesUnder(t *testing.T, st *State, root *x509.Certificate, others ...*x509.Certificate) {
	t.Helper()
	a, err := New(Config{Issuer: st.Issuer, TrustDomain: "cluster.local", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.Issue(Request{CSR: mkCSR(t, ecKey(t), nil), Identity: alice})
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, der := range iss.Chain[1 : len(iss.Chain)-1] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	opts := func(r *x509.Certificate) x509.VerifyOptions {
		return x509.VerifyOptions{Roots: NewBundle(r).Pool(), Intermediates: inter, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	}
	if _, err := iss.Cert.Verify(opts(root)); err != nil {
		t.Errorf("SVID does not chain to %s: %v", root.Subject, err)
	}
	if !bytes.Equal(iss.Chain[len(iss.Chain)-1], root.Raw) {
		t.Errorf("the chain's last element is not the issuing root %s", root.Subject)
	}
	for _, o := range others {
		if _, err := iss.Cert.Verify(opts(o)); err == nil {
			t.Errorf("SVID also chains to %s", o.Subject)
		}
	}
}

func TestDirRotationCycle(t *testing.T) {
	dir, old := newDir(t)
	st, err := Load(dir, t0)
	if err != nil || st.Phase() != Stable {
		t.Fatalf("fresh directory: %v, phase %v", err, st.Phase())
	}

	res, err := Stage(dir, Staging{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Before != Stable || res.After != NewRootTrusted {
		t.Fatalf("stage: %+v", res)
	}
	next := res.State.Staged.Root
	if got := rootsOnDisk(t, dir); len(got) != 2 || !got[0].Equal(old) || !got[1].Equal(next) {
		t.Fatalf("root-cert.pem after stage: want [old, new], got %d roots", len(got))
	}
	if next.Subject.Organization[0] != "cluster.local" {
		t.Errorf("generated root's organisation %v, want the trust domain", next.Subject.Organization)
	}
	issuesUnder(t, res.State, old, next)
	if res, err := Stage(dir, Staging{}, t0); err != nil || res.Changed || !res.State.Staged.Root.Equal(next) {
		t.Fatalf("stage repeated: %+v %v; want no change", res, err)
	}

	res, err = Promote(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.After != NewRootIssuing || res.State.Pending != PendingNone {
		t.Fatalf("promote: %+v", res)
	}
	if got := rootsOnDisk(t, dir); len(got) != 2 || !got[0].Equal(next) || !got[1].Equal(old) {
		t.Fatalf("root-cert.pem after promote: want [new, old]")
	}
	if _, err := os.Stat(filepath.Join(dir, NextDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("next/ still there after promote: %v", err)
	}
	issuesUnder(t, res.State, next, old)
	if res, err := Promote(dir, t0); err != nil || res.Changed {
		t.Fatalf("promote repeated: %+v %v; want no change", res, err)
	}

	res, err = Retire(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.After != Stable {
		t.Fatalf("retire: %+v", res)
	}
	if got := rootsOnDisk(t, dir); len(got) != 1 || !got[0].Equal(next) {
		t.Fatalf("root-cert.pem after retire: want [new]")
	}
	if res, err := Retire(dir, t0); err != nil || res.Changed {
		t.Fatalf("retire repeated: %+v %v; want no change", res, err)
	}
	// The control plane's startup path reads the rotated directory.
	is, created, err := LoadOrCreate(dir, SelfSigned{TrustDomain: "cluster.local"}, t0)
	if err != nil || created || !is.Root.Equal(next) || is.Trusted.Len() != 1 {
		t.Fatalf("LoadOrCreate after the rotation: %v created=%v", err, created)
	}
	// A second rotation may start.
	if _, err := Stage(dir, Staging{}, t0); err != nil {
		t.Fatalf("second rotation: %v", err)
	}
}

// TestDirRotationImport stages an operator's intermediate under a new
// root of theirs instead of a generated root.
func TestDirRotationImport(t *testing.T) {
	dir, old := newDir(t)
	root := mkCA(t, nil, caSpec{cn: "operator root"})
	inter := mkCA(t, root, caSpec{cn: "operator intermediate"})
	imp := Staging{Import: PEMFiles{
		Cert:  pemCerts(inter.cert),
		Key:   pemKey(t, inter.key),
		Chain: pemCerts(inter.cert, root.cert),
		Root:  pemCerts(root.cert),
	}, ImportLabel: "flags"}
	res, err := Stage(dir, imp, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.State.Staged.Cert.Equal(inter.cert) || !res.State.Staged.Root.Equal(root.cert) {
		t.Fatal("staged issuer is not the imported intermediate")
	}
	if res, err := Stage(dir, imp, t0); err != nil || res.Changed {
		t.Fatalf("stage repeated with the same files: %+v %v", res, err)
	}
	other := mkCA(t, nil, caSpec{cn: "other"})
	_, err = Stage(dir, Staging{Import: PEMFiles{Cert: pemCerts(other.cert), Key: pemKey(t, other.key), Root: pemCerts(other.cert)}}, t0)
	if err == nil || !strings.Contains(err.Error(), "another issuer is already staged") {
		t.Fatalf("staging a different issuer: %v", err)
	}
	res, err = Promote(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	issuesUnder(t, res.State, root.cert, old)
	a, _ := New(Config{Issuer: res.State.Issuer, TrustDomain: "cluster.local", Now: fixedNow})
	iss, err := a.Issue(Request{CSR: mkCSR(t, ecKey(t), nil), Identity: alice})
	if err != nil || len(iss.Chain) != 3 || !bytes.Equal(iss.Chain[1], inter.cert.Raw) {
		t.Fatalf("chain after promoting an intermediate: %d elements, %v; want [leaf, intermediate, root]", len(iss.Chain), err)
	}
}

func TestDirRotationRefusals(t *testing.T) {
	t.Run("promote with nothing staged", func(t *testing.T) {
		dir, _ := newDir(t)
		if _, err := Promote(dir, t0); err == nil || !strings.Contains(err.Error(), "nothing staged") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("retire while staged", func(t *testing.T) {
		dir, _ := newDir(t)
		if _, err := Stage(dir, Staging{}, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := Retire(dir, t0); err == nil || !strings.Contains(err.Error(), "promote it before") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("stage before retiring", func(t *testing.T) {
		dir, _ := newDir(t)
		Stage(dir, Staging{}, t0)
		if _, err := Promote(dir, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := Stage(dir, Staging{}, t0); err == nil || !strings.Contains(err.Error(), "retire the old root") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("stage the trusted root", func(t *testing.T) {
		dir, _ := newDir(t)
		files := readFiles(t, dir)
		if _, err := Stage(dir, Staging{Import: files}, t0); err == nil || !strings.Contains(err.Error(), "already trusted") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("imported key does not match", func(t *testing.T) {
		dir, _ := newDir(t)
		c := mkCA(t, nil, caSpec{cn: "new"})
		_, err := Stage(dir, Staging{Import: PEMFiles{Cert: pemCerts(c.cert), Key: pemKey(t, ecKey(t)), Root: pemCerts(c.cert)}, ImportLabel: "flags"}, t0)
		if err == nil || !strings.Contains(err.Error(), "flags/"+KeyFile) || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("corrupt next", func(t *testing.T) {
		dir, _ := newDir(t)
		Stage(dir, Staging{}, t0)
		os.WriteFile(filepath.Join(dir, NextDir, CertFile), []byte("garbage"), 0o644)
		_, err := Load(dir, t0)
		var fe *FileError
		if !errors.As(err, &fe) || fe.Path != filepath.Join(dir, NextDir, CertFile) {
			t.Fatalf("got %v, want a FileError naming next/%s", err, CertFile)
		}
		if _, err := Promote(dir, t0); err == nil {
			t.Fatal("promoted a corrupt staged issuer")
		}
	})
}

func readFiles(t *testing.T, dir string) PEMFiles {
	t.Helper()
	var f PEMFiles
	for name, dst := range map[string]*[]byte{CertFile: &f.Cert, KeyFile: &f.Key, ChainFile: &f.Chain, RootFile: &f.Root} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		*dst = b
	}
	return f
}

var errCrash = errors.New("simulated crash")

// crashingOps performs the first n writes and then fails every call, as a
// process killed at that point would stop; a file being written when the
// crash comes is left as a torn temporary file beside its target.
func crashingOps(n int) (fsOps, *int) {
	real := osOps()
	calls := 0
	step := func() bool { calls++; return calls > n }
	return fsOps{
		writeFile: func(path string, data []byte, mode os.FileMode) error {
			if step() {
				os.WriteFile(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-torn"), data[:len(data)/2], mode)
				return errCrash
			}
			return real.writeFile(path, data, mode)
		},
		mkdirTemp: func(dir, pattern string) (string, error) {
			if step() {
				return "", errCrash
			}
			return real.mkdirTemp(dir, pattern)
		},
		rename: func(from, to string) error {
			if step() {
				return errCrash
			}
			return real.rename(from, to)
		},
		removeAll: func(path string) error {
			if step() {
				return errCrash
			}
			return real.removeAll(path)
		},
		syncDir: func(dir string) error {
			if step() {
				return errCrash
			}
			return real.syncDir(dir)
		},
	}, &calls
}

// TestDirRotationCrash stops each step after every possible number of
// writes. The directory must load after each crash (the issuer and its
// bundle those of the step before or after, never a mix), and running the
// step again must complete it.
func TestDirRotationCrash(t *testing.T) {
	type step struct {
		name  string
		run   func(o fsOps, dir string) error
		setup func(t *testing.T, dir string)
		after Phase
	}
	stageGen := func(o fsOps, dir string) error { _, err := stage(o, dir, Staging{}, t0); return err }
	promoteOp := func(o fsOps, dir string) error { _, err := promote(o, dir, t0); return err }
	retireOp := func(o fsOps, dir string) error { _, err := retire(o, dir, t0); return err }
	staged := func(t *testing.T, dir string) {
		if _, err := Stage(dir, Staging{}, t0); err != nil {
			t.Fatal(err)
		}
	}
	promoted := func(t *testing.T, dir string) {
		staged(t, dir)
		if _, err := Promote(dir, t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []step{
		{"stage", stageGen, func(*testing.T, string) {}, NewRootTrusted},
		{"promote", promoteOp, staged, NewRootIssuing},
		{"retire", retireOp, promoted, Stable},
	} {
		t.Run(s.name, func(t *testing.T) {
			for n := 0; ; n++ {
				dir, _ := newDir(t)
				s.setup(t, dir)
				before, err := Load(dir, t0)
				if err != nil {
					t.Fatal(err)
				}
				o, calls := crashingOps(n)
				err = s.run(o, dir)
				if err == nil {
					if n == 0 {
						t.Fatal("the step wrote nothing")
					}
					t.Logf("%s: %d writes, crash-tested after each", s.name, *calls)
					break
				}
				if !errors.Is(err, errCrash) {
					t.Fatalf("crash after %d writes: unexpected error %v", n, err)
				}
				st, err := Load(dir, t0)
				if err != nil {
					t.Fatalf("crash after %d writes: the directory does not load: %v", n, err)
				}
				// The issuer is the one before the step or, for promote, the
				// staged one: never anything else.
				same := st.Issuer.Cert.Equal(before.Issuer.Cert)
				if !same && (before.Staged == nil || !st.Issuer.Cert.Equal(before.Staged.Cert) || !st.Issuer.Trusted.Contains(before.Issuer.Root)) {
					t.Fatalf("crash after %d writes: an issuer that is neither the old nor the staged one", n)
				}
				if _, err := New(Config{Issuer: st.Issuer, TrustDomain: "cluster.local", Now: fixedNow}); err != nil {
					t.Fatalf("crash after %d writes: %v", n, err)
				}
				// Running the step again completes it.
				if err := s.run(osOps(), dir); err != nil {
					t.Fatalf("crash after %d writes (state %s, pending %q): running %s again: %v", n, st.Phase(), st.Pending, s.name, err)
				}
				fin, err := Load(dir, t0)
				if err != nil || fin.Phase() != s.after || fin.Pending != PendingNone {
					t.Fatalf("crash after %d writes, then %s again: phase %v pending %q err %v; want %s", n, s.name, fin.Phase(), fin.Pending, err, s.after)
				}
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".") || e.Name() == NextDir && s.after != NewRootTrusted {
						t.Errorf("crash after %d writes: %s left behind", n, e.Name())
					}
				}
				if n > 50 {
					t.Fatal("the step never completes")
				}
			}
		})
	}
}
