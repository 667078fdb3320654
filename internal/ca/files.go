package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// maxFileBytes bounds each CA file read from disk.
const maxFileBytes = 1 << 20

// SelfSigned configures a generated root.
type SelfSigned struct {
	// TrustDomain goes into the root's subject organisation (as Istio does).
	TrustDomain string
	// TTL is the root's lifetime (default 10 years, Istio's default).
	TTL time.Duration
}

// DefaultRootTTL is the lifetime of a generated root.
const DefaultRootTTL = 10 * 365 * 24 * time.Hour

// LoadOrCreate loads the CA in dir (through Load: a rotation step a crash
// interrupted reads as Load recovers it), or, when none of the four files exists,
// generates a self-signed root, persists it and returns it (created is then
// true). A partial set (some files present, some missing) is an error that
// names the missing files: it is never overwritten, since it may be an
// operator's half-copied plugged-in CA.
func LoadOrCreate(dir string, opts SelfSigned, now time.Time) (is *Issuer, created bool, err error) {
	var present, missing []string
	for _, name := range []string{CertFile, KeyFile, ChainFile, RootFile} {
		_, err := os.Lstat(filepath.Join(dir, name))
		switch {
		case err == nil:
			present = append(present, name)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, name)
		default:
			return nil, false, &FileError{Path: filepath.Join(dir, name), Reason: "checking", Err: err}
		}
	}
	switch {
	case len(missing) == 0:
		st, err := Load(dir, now)
		if err != nil {
			return nil, false, err
		}
		return st.Issuer, false, nil
	case len(present) > 0:
		return nil, false, &FileError{Path: filepath.Join(dir, missing[0]),
			Reason: fmt.Sprintf("missing while %v exist: incomplete CA directory (%v missing); restore the files or empty the directory to generate a new root", present, missing)}
	}
	is, err = NewSelfSigned(opts, now, rand.Reader)
	if err != nil {
		return nil, false, err
	}
	if err := WriteDir(dir, is); err != nil {
		return nil, false, err
	}
	return is, true, nil
}

// LoadDir reads and verifies the four files in dir (see ParseIssuer).
func LoadDir(dir string, now time.Time) (*Issuer, error) {
	var f PEMFiles
	for _, x := range []struct {
		name string
		dst  *[]byte
	}{{CertFile, &f.Cert}, {KeyFile, &f.Key}, {ChainFile, &f.Chain}, {RootFile, &f.Root}} {
		data, err := readLimited(filepath.Join(dir, x.name))
		if err != nil {
			return nil, err
		}
		*x.dst = data
	}
	return ParseIssuer(dir, f, now)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &FileError{Path: path, Reason: "reading", Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, &FileError{Path: path, Reason: "reading", Err: err}
	}
	if len(data) > maxFileBytes {
		return nil, &FileError{Path: path, Reason: fmt.Sprintf("larger than %d bytes", maxFileBytes)}
	}
	return data, nil
}

// WriteDir persists the issuer's four files in dir (created 0700 if
// needed). Each file is written to a temporary file, synced and renamed, so
// a crash leaves every file either old or new, never torn; the key is
// 0600, the certificates 0644. The signing certificate is written last: a
// crash before it leaves a set that LoadDir reports (key and certificate
// not matching, or a file missing) rather than a silently mixed CA.
func WriteDir(dir string, is *Issuer) error {
	files, err := is.PEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &FileError{Path: dir, Reason: "creating the CA directory", Err: err}
	}
	for _, x := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{RootFile, files.Root, 0o644},
		{ChainFile, files.Chain, 0o644},
		{KeyFile, files.Key, 0o600},
		{CertFile, files.Cert, 0o644},
	} {
		if err := writeAtomic(filepath.Join(dir, x.name), x.data, x.mode); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// writeAtomic writes data to path through a synced temporary file in the
// same directory and a rename.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return &FileError{Path: path, Reason: "creating a temporary file", Err: err}
	}
	name := tmp.Name()
	fail := func(reason string, err error) error {
		tmp.Close()
		os.Remove(name)
		return &FileError{Path: path, Reason: reason, Err: err}
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail("setting the mode", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail("writing", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("syncing", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return &FileError{Path: path, Reason: "closing", Err: err}
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return &FileError{Path: path, Reason: "renaming into place", Err: err}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return &FileError{Path: dir, Reason: "opening to sync", Err: err}
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return &FileError{Path: dir, Reason: "syncing", Err: err}
	}
	return nil
}

// NewSelfSigned generates an ECDSA P-256 root valid from now (backdated by
// ClockSkew) for opts.TTL. The root signs workload certificates itself.
func NewSelfSigned(opts SelfSigned, now time.Time, random io.Reader) (*Issuer, error) {
	if err := ValidateTrustDomain(opts.TrustDomain); err != nil {
		return nil, fmt.Errorf("self-signed root: %w", err)
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultRootTTL
	}
	if random == nil {
		random = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), random)
	if err != nil {
		return nil, fmt.Errorf("self-signed root: generating the key: %w", err)
	}
	serial, err := newSerial(random)
	if err != nil {
		return nil, fmt.Errorf("self-signed root: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{opts.TrustDomain}, CommonName: "Trellis root CA"},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(opts.TTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(random, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-signed root: signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("self-signed root: %w", err)
	}
	return &Issuer{Cert: cert, Key: key, Root: cert, Trusted: NewBundle(cert)}, nil
}
