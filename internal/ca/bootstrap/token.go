package bootstrap

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trellismesh/trellis/internal/ca"
)

// Prefix starts every bootstrap token; it is how the CA tells a bootstrap
// token from a Kubernetes service-account JWT in the same header.
const Prefix = "trellis-bootstrap/v1/"

const (
	secretBytes = 32
	// maxTokenBytes bounds a presented token and a token file.
	maxTokenBytes = 512
)

// ErrNotBootstrap means the credential is not a bootstrap token at all (no
// Prefix): another authenticator may accept it.
var ErrNotBootstrap = errors.New("not a bootstrap token")

// Path returns the token file of namespace/serviceAccount under dir.
func Path(dir, namespace, serviceAccount string) string {
	return filepath.Join(dir, namespace, serviceAccount+".token")
}

// Mint returns the token of namespace/serviceAccount, creating it when the
// file does not exist: 32 random bytes, written 0600 under directories
// 0700, created atomically (a concurrent Mint for the same workload returns
// the same token). The workload presents the file's content, trimmed, as
// "authorization: Bearer <token>".
func Mint(dir, namespace, serviceAccount string) (token, path string, err error) {
	if err := checkNames(namespace, serviceAccount); err != nil {
		return "", "", err
	}
	path = Path(dir, namespace, serviceAccount)
	if tok, err := readToken(dir, namespace, serviceAccount); err == nil {
		return tok, path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	secret := make([]byte, secretBytes)
	if _, err := io.ReadFull(rand.Reader, secret); err != nil {
		return "", "", fmt.Errorf("bootstrap token %s: %w", path, err)
	}
	token = Prefix + namespace + "/" + serviceAccount + "/" + base64.RawURLEncoding.EncodeToString(secret)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", fmt.Errorf("bootstrap token %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return "", "", fmt.Errorf("bootstrap token %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("bootstrap token %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("bootstrap token %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", "", fmt.Errorf("bootstrap token %s: %w", path, err)
	}
	// Link fails if the file appeared meanwhile: then the other token wins.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			tok, rerr := readToken(dir, namespace, serviceAccount)
			return tok, path, rerr
		}
		return "", "", fmt.Errorf("bootstrap token %s: %w", path, err)
	}
	return token, path, nil
}

// Verifier checks presented tokens against the token files under Dir.
// Revoking a workload's token is deleting its file; minting one (Mint, or
// any tool writing the same format) needs no restart.
type Verifier struct {
	Dir string
}

// Verify returns the namespace and service account a token proves. A
// credential without Prefix is ErrNotBootstrap; any other failure names
// the reason without echoing the secret.
func (v Verifier) Verify(token string) (namespace, serviceAccount string, err error) {
	if !strings.HasPrefix(token, Prefix) {
		return "", "", ErrNotBootstrap
	}
	if len(token) > maxTokenBytes {
		return "", "", fmt.Errorf("bootstrap token: longer than %d bytes", maxTokenBytes)
	}
	parts := strings.Split(strings.TrimPrefix(token, Prefix), "/")
	if len(parts) != 3 || parts[2] == "" {
		return "", "", errors.New("bootstrap token: not <namespace>/<service-account>/<secret>")
	}
	namespace, serviceAccount = parts[0], parts[1]
	if err := checkNames(namespace, serviceAccount); err != nil {
		return "", "", err
	}
	want, err := readToken(v.Dir, namespace, serviceAccount)
	if err != nil {
		return "", "", err
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		return "", "", fmt.Errorf("bootstrap token for %s/%s: does not match the token file", namespace, serviceAccount)
	}
	return namespace, serviceAccount, nil
}

func checkNames(namespace, serviceAccount string) error {
	if err := ca.ValidateNamespace(namespace); err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	if err := ca.ValidateServiceAccount(serviceAccount); err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	return nil
}

// readToken reads a token file through an os.Root confined to dir, so no
// name (already validated) and no symbolic link can reach outside it.
func readToken(dir, namespace, serviceAccount string) (string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("bootstrap token directory: %w", err)
	}
	defer root.Close()
	name := filepath.Join(namespace, serviceAccount+".token")
	st, err := root.Lstat(name)
	if err != nil {
		return "", fmt.Errorf("bootstrap token for %s/%s: %w", namespace, serviceAccount, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("bootstrap token for %s/%s: %s is not a regular file", namespace, serviceAccount, name)
	}
	f, err := root.Open(name)
	if err != nil {
		return "", fmt.Errorf("bootstrap token for %s/%s: %w", namespace, serviceAccount, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+2))
	if err != nil {
		return "", fmt.Errorf("bootstrap token for %s/%s: %w", namespace, serviceAccount, err)
	}
	tok := string(bytes.TrimSpace(data))
	if len(tok) > maxTokenBytes || !strings.HasPrefix(tok, Prefix+namespace+"/"+serviceAccount+"/") {
		return "", fmt.Errorf("bootstrap token for %s/%s: token file %s is malformed", namespace, serviceAccount, name)
	}
	return tok, nil
}
