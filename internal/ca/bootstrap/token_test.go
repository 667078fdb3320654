package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestMintAndVerify(t *testing.T) {
	dir := t.TempDir()
	tok, path, err := Mint(dir, "ns1", "a.b")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "ns1", "a.b.token") || !strings.HasPrefix(tok, Prefix+"ns1/a.b/") {
		t.Fatalf("token %q at %s", tok, path)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v err %v, want %v", p, st.Mode().Perm(), err, mode)
		}
	}
	again, _, err := Mint(dir, "ns1", "a.b")
	if err != nil || again != tok {
		t.Errorf("second Mint returned another token: %v", err)
	}
	ns, sa, err := Verifier{Dir: dir}.Verify(tok)
	if err != nil || ns != "ns1" || sa != "a.b" {
		t.Fatalf("Verify = %s %s %v", ns, sa, err)
	}
}

func TestMintConcurrentAgrees(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	toks := make([]string, 8)
	for i := range toks {
		wg.Go(func() {
			tok, _, err := Mint(dir, "ns", "sa")
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range toks {
		if tok != toks[0] {
			t.Fatal("concurrent Mint produced different tokens")
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	dir := t.TempDir()
	tok, _, err := Mint(dir, "ns1", "a")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := Mint(dir, "ns2", "b")
	outside := t.TempDir()
	outsideTok, _, _ := Mint(outside, "ns3", "c")
	os.MkdirAll(filepath.Join(dir, "ns3"), 0o700)
	os.Symlink(filepath.Join(outside, "ns3", "c.token"), filepath.Join(dir, "ns3", "c.token"))
	os.Symlink(outside, filepath.Join(dir, "ns4"))
	os.MkdirAll(filepath.Join(dir, "ns5", "d.token"), 0o700)
	os.MkdirAll(filepath.Join(dir, "ns6"), 0o700)
	os.WriteFile(filepath.Join(dir, "ns6", "e.token"), []byte(strings.Repeat("x", 4096)), 0o600)
	secret := tok[strings.LastIndex(tok, "/")+1:]

	for _, tc := range []struct {
		name, token, err string
	}{
		{"not a bootstrap token", "eyJhbGciOi.x.y", "not a bootstrap token"},
		{"empty", "", "not a bootstrap token"},
		{"wrong secret", tok[:len(tok)-2] + "xx", "does not match"},
		{"another workload's secret", Prefix + "ns1/a/" + other[strings.LastIndex(other, "/")+1:], "does not match"},
		{"own secret, claiming another workload", Prefix + "ns2/b/" + secret, "does not match"},
		{"unknown workload", Prefix + "ns9/z/" + secret, "no such file"},
		{"traversal", Prefix + "../etc/" + secret, "namespace"},
		{"upper case", Prefix + "NS1/a/" + secret, "namespace"},
		{"missing secret", Prefix + "ns1/a/", "not <namespace>"},
		{"extra segment", Prefix + "ns1/a/b/" + secret, "not <namespace>"},
		{"too long", Prefix + "ns1/a/" + strings.Repeat("x", 600), "longer than"},
		{"symlink leaving the directory", outsideTok, "not a regular file"},
		{"directory symlink leaving the directory", Prefix + "ns4/ns3/" + secret, "escapes"},
		{"not a regular file", Prefix + "ns5/d/" + secret, "not a regular file"},
		{"oversized token file", Prefix + "ns6/e/" + secret, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, sa, err := Verifier{Dir: dir}.Verify(tc.token)
			if err == nil {
				t.Fatalf("accepted as %s/%s", ns, sa)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not mention %q", err, tc.err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Error("error echoes the secret")
			}
			if tc.err == "not a bootstrap token" != errors.Is(err, ErrNotBootstrap) {
				t.Errorf("ErrNotBootstrap mismatch: %v", err)
			}
		})
	}
	// Revocation: deleting the file.
	os.Remove(Path(dir, "ns1", "a"))
	if _, _, err := (Verifier{Dir: dir}).Verify(tok); err == nil {
		t.Error("revoked token accepted")
	}
}

func TestMintRefusesBadNames(t *testing.T) {
	for _, n := range [][2]string{{"", "a"}, {"ns", ""}, {"../x", "a"}, {"ns", "a/b"}, {"NS", "a"}} {
		if _, _, err := Mint(t.TempDir(), n[0], n[1]); err == nil {
			t.Errorf("Mint(%q, %q) accepted", n[0], n[1])
		}
	}
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	tok, _, err := Mint(dir, "ns1", "a")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(Prefix + "ns1/a/x")
	f.Add(Prefix + "../../a/x")
	f.Add(Prefix + "ns1/a.b/" + strings.Repeat("/", 10))
	v := Verifier{Dir: dir}
	f.Fuzz(func(t *testing.T, s string) {
		ns, sa, err := v.Verify(s)
		if err == nil && (s != tok || ns != "ns1" || sa != "a") {
			t.Fatalf("accepted %q as %s/%s", s, ns, sa)
		}
	})
}
