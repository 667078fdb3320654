package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func newDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, _, err := ca.LoadOrCreate(dir, ca.SelfSigned{TrustDomain: "example.org"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRotateCycle runs the three steps through the command and checks
// what status reports after each.
func TestRotateCycle(t *testing.T) {
	dir := newDir(t)
	for _, s := range []struct {
		args  []string
		out   []string
		phase string
		roots int
	}{
		{[]string{"status"}, []string{"phase:   stable", "[issuing]", "root-cert.pem (point proxies' --ca-root-cert here)"}, "stable", 1},
		{[]string{"rotate", "stage"}, []string{"stage: stable -> new-root-trusted", "[staged]", "staged issuer: "}, "new-root-trusted", 2},
		{[]string{"rotate", "stage"}, []string{"stage: already done, nothing changed"}, "new-root-trusted", 2},
		{[]string{"rotate", "promote"}, []string{"promote: new-root-trusted -> new-root-issuing", "[old, still trusted]"}, "new-root-issuing", 2},
		{[]string{"rotate", "retire"}, []string{"retire: new-root-issuing -> stable"}, "stable", 1},
	} {
		out, err := run(t, append(s.args, "--ca-dir", dir)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", s.args, err, out)
		}
		for _, want := range s.out {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", s.args, want, out)
			}
		}
		js, err := run(t, "status", "--ca-dir", dir, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var st Status
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("status json: %v\n%s", err, js)
		}
		if st.Phase != s.phase || len(st.Roots) != s.roots || st.Roots[0].Role != "issuing" || len(st.Roots[0].Fingerprint) != 95 {
			t.Errorf("after %v: status %+v; want phase %s with %d roots, the issuing one first", s.args, st, s.phase, s.roots)
		}
	}
	if out, _ := run(t, "status", "--ca-dir", dir); !strings.Contains(out, "O=example.org") {
		t.Errorf("the generated root does not keep the trust domain:\n%s", out)
	}
}

// TestStagePluggedIn stages an operator's root and key from files.
func TestStagePluggedIn(t *testing.T) {
	dir := newDir(t)
	tmp := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "operator root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	rootPath, keyPath := filepath.Join(tmp, "root.pem"), filepath.Join(tmp, "key.pem")
	os.WriteFile(rootPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)

	if _, err := run(t, "rotate", "stage", "--ca-dir", dir, "--root-cert", rootPath); err == nil || !strings.Contains(err.Error(), "--root-key") {
		t.Fatalf("--root-cert alone: %v", err)
	}
	if _, err := run(t, "rotate", "stage", "--ca-dir", dir, "--root-cert", rootPath, "--root-key", filepath.Join(tmp, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing key file: %v", err)
	}
	out, err := run(t, "rotate", "stage", "--ca-dir", dir, "--root-cert", rootPath, "--root-key", keyPath)
	if err != nil || !strings.Contains(out, "CN=operator root [staged]") {
		t.Fatalf("stage plugged-in: %v\n%s", err, out)
	}
	if _, err := run(t, "rotate", "retire", "--ca-dir", dir); err == nil || !strings.Contains(err.Error(), "promote it before") {
		t.Fatalf("retire while staged: %v", err)
	}
	if _, err := run(t, "rotate", "promote"); err == nil || !strings.Contains(err.Error(), "ca-dir") {
		t.Fatalf("without --ca-dir: %v", err)
	}
}
