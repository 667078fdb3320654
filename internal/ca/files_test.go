package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	is, created, err := LoadOrCreate(dir, SelfSigned{TrustDomain: "cluster.local"}, t0)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	if is.Cert.Subject.Organization[0] != "cluster.local" || !is.Cert.IsCA || is.Cert.NotAfter.Sub(t0) != DefaultRootTTL {
		t.Errorf("root: subject %v CA %v lifetime %s", is.Cert.Subject, is.Cert.IsCA, is.Cert.NotAfter.Sub(t0))
	}
	for name, mode := range map[string]os.FileMode{CertFile: 0o644, KeyFile: 0o600, ChainFile: 0o644, RootFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("directory holds %d entries, want the 4 files (temporary files left?)", len(entries))
	}

	again, created, err := LoadOrCreate(dir, SelfSigned{TrustDomain: "cluster.local"}, t0.Add(time.Hour))
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if !bytes.Equal(again.Root.Raw, is.Root.Raw) || keyMatches(again.Key, is.Key.Public()) != nil {
		t.Error("second start did not load the persisted root and key")
	}
}

func TestLoadOrCreateRefusesBrokenDirectory(t *testing.T) {
	write := func(t *testing.T) string {
		dir := t.TempDir()
		is, _, err := LoadOrCreate(dir, SelfSigned{TrustDomain: "cluster.local"}, t0)
		if err != nil || is == nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name   string
		break_ func(dir string)
		file   string
		err    string
	}{
		{"key missing", func(d string) { os.Remove(filepath.Join(d, KeyFile)) }, KeyFile, "incomplete CA directory"},
		{"root and chain missing", func(d string) {
			os.Remove(filepath.Join(d, RootFile))
			os.Remove(filepath.Join(d, ChainFile))
		}, ChainFile, "missing"},
		{"corrupt certificate", func(d string) { os.WriteFile(filepath.Join(d, CertFile), []byte("garbage"), 0o644) }, CertFile, "not a PEM certificate"},
		{"truncated certificate", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, CertFile))
			os.WriteFile(filepath.Join(d, CertFile), b[:len(b)/2], 0o644)
		}, CertFile, ""},
		{"corrupt key", func(d string) {
			os.WriteFile(filepath.Join(d, KeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
		}, KeyFile, "parsing"},
		{"empty root file", func(d string) { os.WriteFile(filepath.Join(d, RootFile), nil, 0o644) }, RootFile, "no certificate"},
		{"huge file", func(d string) {
			os.WriteFile(filepath.Join(d, ChainFile), bytes.Repeat([]byte("x"), maxFileBytes+1), 0o644)
		}, ChainFile, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t)
			before, _ := os.ReadFile(filepath.Join(dir, CertFile))
			tc.break_(dir)
			_, created, err := LoadOrCreate(dir, SelfSigned{TrustDomain: "cluster.local"}, t0)
			if err == nil || created {
				t.Fatalf("broken directory accepted (created=%v)", created)
			}
			var fe *FileError
			if !errors.As(err, &fe) || filepath.Base(fe.Path) != tc.file {
				t.Fatalf("error %v does not name %s", err, tc.file)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not mention %q", err, tc.err)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, CertFile)); tc.name != "corrupt certificate" && tc.name != "truncated certificate" && !bytes.Equal(before, after) {
				t.Error("the CA certificate was overwritten")
			}
		})
	}
}

// pki is an operator's root and intermediate.
type pki struct {
	root, inter *testCA
}

func (p pki) files(t *testing.T) PEMFiles {
	return PEMFiles{
		Cert:  pemCerts(p.inter.cert),
		Key:   pemKey(t, p.inter.key),
		Chain: pemCerts(p.inter.cert, p.root.cert),
		Root:  pemCerts(p.root.cert),
	}
}

func TestPluggedInCA(t *testing.T) {
	root := mkCA(t, nil, caSpec{cn: "operator root"})
	good := pki{root: root, inter: mkCA(t, root, caSpec{cn: "intermediate"})}
	otherRoot := mkCA(t, nil, caSpec{cn: "other root"})
	mid := mkCA(t, root, caSpec{cn: "middle"})
	deep := mkCA(t, mid, caSpec{cn: "deep"})

	for _, tc := range []struct {
		name   string
		files  func() PEMFiles
		file   string // "" = accepted
		reason string
	}{
		{"valid", func() PEMFiles { return good.files(t) }, "", ""},
		{"chain without ca-cert first", func() PEMFiles {
			f := good.files(t)
			f.Chain = pemCerts(root.cert)
			return f
		}, "", ""},
		{"empty chain file", func() PEMFiles {
			f := good.files(t)
			f.Chain = nil
			return f
		}, "", ""},
		{"two levels", func() PEMFiles {
			return PEMFiles{Cert: pemCerts(deep.cert), Key: pemKey(t, deep.key), Chain: pemCerts(deep.cert, mid.cert, root.cert), Root: pemCerts(root.cert)}
		}, "", ""},
		{"two levels, middle missing", func() PEMFiles {
			return PEMFiles{Cert: pemCerts(deep.cert), Key: pemKey(t, deep.key), Chain: pemCerts(deep.cert), Root: pemCerts(root.cert)}
		}, CertFile, "does not chain"},
		{"signed by another root", func() PEMFiles {
			f := good.files(t)
			f.Root = pemCerts(otherRoot.cert)
			return f
		}, CertFile, "does not chain"},
		{"key does not match", func() PEMFiles {
			f := good.files(t)
			f.Key = pemKey(t, ecKey(t))
			return f
		}, KeyFile, "does not match"},
		{"intermediate not a CA", func() PEMFiles {
			return pki{root, mkCA(t, root, caSpec{notCA: true})}.files(t)
		}, CertFile, "not a CA"},
		{"intermediate without keyCertSign", func() PEMFiles {
			return pki{root, mkCA(t, root, caSpec{keyUsage: x509.KeyUsageDigitalSignature})}.files(t)
		}, CertFile, "keyCertSign"},
		{"intermediate expired", func() PEMFiles {
			return pki{root, mkCA(t, root, caSpec{notBefore: t0.Add(-48 * time.Hour), notAfter: t0.Add(-time.Hour)})}.files(t)
		}, CertFile, "expired"},
		{"intermediate not yet valid", func() PEMFiles {
			return pki{root, mkCA(t, root, caSpec{notBefore: t0.Add(time.Hour)})}.files(t)
		}, CertFile, "not valid before"},
		{"root expired", func() PEMFiles {
			old := mkCA(t, nil, caSpec{notBefore: t0.Add(-48 * time.Hour), notAfter: t0.Add(-time.Hour)})
			f := good.files(t)
			f.Root = pemCerts(root.cert, old.cert)
			return f
		}, RootFile, "certificate 2"},
		{"RSA key too small", func() PEMFiles {
			k := testKey(t, "rsa1024")
			return pki{root, mkCA(t, root, caSpec{key: k})}.files(t)
		}, CertFile, "1024 bits"},
		{"two certificates in ca-cert.pem", func() PEMFiles {
			f := good.files(t)
			f.Cert = pemCerts(good.inter.cert, root.cert)
			return f
		}, CertFile, "2 certificates"},
		{"a key in the chain file", func() PEMFiles {
			f := good.files(t)
			f.Chain = append(f.Chain, pemKey(t, ecKey(t))...)
			return f
		}, ChainFile, "PRIVATE KEY"},
		{"two keys", func() PEMFiles {
			f := good.files(t)
			f.Key = append(f.Key, pemKey(t, ecKey(t))...)
			return f
		}, KeyFile, "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := tc.files()
			for name, data := range map[string][]byte{CertFile: f.Cert, KeyFile: f.Key, ChainFile: f.Chain, RootFile: f.Root} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			is, created, err := LoadOrCreate(dir, SelfSigned{TrustDomain: "cluster.local"}, t0)
			if created {
				t.Fatal("a plugged-in directory was replaced by a self-signed root")
			}
			if tc.file == "" {
				if err != nil {
					t.Fatalf("valid plugged-in CA refused: %v", err)
				}
				if !bytes.Equal(is.Root.Raw, root.cert.Raw) {
					t.Error("issuing root is not the operator's root")
				}
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) || filepath.Base(fe.Path) != tc.file {
				t.Fatalf("error %v does not name %s", err, tc.file)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not give the reason %q", err, tc.reason)
			}
		})
	}
}

func TestWriteDirRoundTrip(t *testing.T) {
	root := mkCA(t, nil, caSpec{cn: "operator root"})
	next := mkCA(t, nil, caSpec{cn: "next root"})
	inter := mkCA(t, root, caSpec{cn: "intermediate"})
	is, err := ParseIssuer("mem", PEMFiles{Cert: pemCerts(inter.cert), Key: pemKey(t, inter.key), Root: pemCerts(next.cert, root.cert)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := is.Trusted.Certs(); len(got) != 2 || !bytes.Equal(got[0].Raw, root.cert.Raw) {
		t.Fatal("the issuing root is not first in the trust bundle")
	}
	dir := t.TempDir()
	if err := WriteDir(dir, is); err != nil {
		t.Fatal(err)
	}
	back, err := LoadDir(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Trusted.Equal(is.Trusted) || !bytes.Equal(back.Cert.Raw, is.Cert.Raw) || len(back.Chain) != 0 {
		t.Error("round trip changed the issuer")
	}
}
