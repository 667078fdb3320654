package ca

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/ca"
)

// NewCommand returns `trellis ca`.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Operate the mesh CA's directory: root rotation and status",
	}
	cmd.AddCommand(rotateCommand(), statusCommand())
	return cmd
}

func rotateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the root: stage (trust a new root), promote (issue under it), retire (drop the old one)",
	}
	var dir, td, rootCert, rootKey, chain string
	stage := &cobra.Command{
		Use:   "stage",
		Short: "Trust a new root alongside the current one (generated, or from --root-cert/--root-key/--cert-chain)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := staging(td, rootCert, rootKey, chain)
			if err != nil {
				return err
			}
			return step(cmd.OutOrStdout(), "stage", dir, func(now time.Time) (*ca.Result, error) { return ca.Stage(dir, src, now) })
		},
	}
	stage.Flags().StringVar(&td, "trust-domain", "", "trust domain of a generated root (default: the current root's)")
	stage.Flags().StringVar(&rootCert, "root-cert", "", "PEM file: the new root certificate (plugged-in CA)")
	stage.Flags().StringVar(&rootKey, "root-key", "", "PEM file: the signing key, of the first certificate of --cert-chain, or of --root-cert without a chain")
	stage.Flags().StringVar(&chain, "cert-chain", "", "PEM file: the signing certificate (an intermediate) followed by the certificates up to the root")
	promote := &cobra.Command{
		Use:   "promote",
		Short: "Issue under the staged root; the old root stays trusted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return step(cmd.OutOrStdout(), "promote", dir, func(now time.Time) (*ca.Result, error) { return ca.Promote(dir, now) })
		},
	}
	retire := &cobra.Command{
		Use:   "retire",
		Short: "Drop the old root from the trust bundle (after every workload certificate was renewed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return step(cmd.OutOrStdout(), "retire", dir, func(now time.Time) (*ca.Result, error) { return ca.Retire(dir, now) })
		},
	}
	for _, c := range []*cobra.Command{stage, promote, retire} {
		c.Flags().StringVar(&dir, "ca-dir", "", "the CA directory (trellis discovery --ca-dir)")
		c.MarkFlagRequired("ca-dir")
		cmd.AddCommand(c)
	}
	return cmd
}

// staging reads the plugged-in files, or asks for a generated root.
func staging(td, rootCert, rootKey, chain string) (ca.Staging, error) {
	if rootCert == "" && rootKey == "" && chain == "" {
		return ca.Staging{Generate: ca.SelfSigned{TrustDomain: td}}, nil
	}
	if rootCert == "" || rootKey == "" {
		return ca.Staging{}, errors.New("stage: --root-cert and --root-key go together (--cert-chain is optional)")
	}
	if td != "" {
		return ca.Staging{}, errors.New("stage: --trust-domain is for a generated root; a plugged-in CA brings its own")
	}
	var f ca.PEMFiles
	var err error
	if f.Root, err = readFile("--root-cert", rootCert); err != nil {
		return ca.Staging{}, err
	}
	if f.Key, err = readFile("--root-key", rootKey); err != nil {
		return ca.Staging{}, err
	}
	f.Cert = f.Root
	if chain != "" {
		if f.Chain, err = readFile("--cert-chain", chain); err != nil {
			return ca.Staging{}, err
		}
		if f.Cert, err = firstPEM(chain, f.Chain); err != nil {
			return ca.Staging{}, err
		}
	}
	return ca.Staging{Import: f, ImportLabel: "stage files"}, nil
}

func readFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stage: %s %s: %w", flag, path, err)
	}
	return b, nil
}

// firstPEM returns the first certificate block of a chain file.
func firstPEM(path string, data []byte) ([]byte, error) {
	certs, err := ca.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("stage: --cert-chain %s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("stage: --cert-chain %s: no certificate", path)
	}
	return ca.EncodeCertificates(certs[0]), nil
}

func step(w io.Writer, name, dir string, run func(time.Time) (*ca.Result, error)) error {
	res, err := run(time.Now())
	if err != nil {
		return err
	}
	if !res.Changed {
		fmt.Fprintf(w, "%s: already done, nothing changed (phase %s)\n", name, res.After)
	} else {
		fmt.Fprintf(w, "%s: %s -> %s\n", name, res.Before, res.After)
	}
	printStatus(w, status(res.State))
	return nil
}

func statusCommand() *cobra.Command {
	var dir, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the rotation phase, the trusted roots and the issuer of a CA directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := ca.Load(dir, time.Now())
			if err != nil {
				return err
			}
			s := status(st)
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			case "", "text":
				printStatus(cmd.OutOrStdout(), s)
				return nil
			}
			return fmt.Errorf("unknown output format %q (want text or json)", output)
		},
	}
	cmd.Flags().StringVar(&dir, "ca-dir", "", "the CA directory (trellis discovery --ca-dir)")
	cmd.MarkFlagRequired("ca-dir")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// Status is what `trellis ca status` reports.
type Status struct {
	Dir     string `json:"dir"`
	Phase   string `json:"phase"`
	Pending string `json:"pending,omitempty"`
	// Bundle is the published trust bundle: what proxies must point at.
	Bundle string `json:"bundle"`
	Issuer Cert   `json:"issuer"`
	Roots  []Cert `json:"roots"`
	Staged *Cert  `json:"staged,omitempty"`
}

// Cert describes one certificate.
type Cert struct {
	Subject     string    `json:"subject"`
	Fingerprint string    `json:"sha256"`
	NotAfter    time.Time `json:"notAfter"`
	Role        string    `json:"role,omitempty"`
}

func describe(c interface{ String() string }, fp string, notAfter time.Time, role string) Cert {
	return Cert{Subject: c.String(), Fingerprint: fp, NotAfter: notAfter.UTC(), Role: role}
}

func status(st *ca.State) Status {
	s := Status{Dir: st.Dir, Phase: st.Phase().String(), Pending: string(st.Pending), Bundle: st.Dir + "/" + ca.RootFile}
	is := st.Issuer
	s.Issuer = describe(is.Cert.Subject, ca.Fingerprint(is.Cert), is.Cert.NotAfter, "")
	for _, r := range is.Trusted.Certs() {
		role := "old, still trusted"
		switch {
		case r.Equal(is.Root):
			role = "issuing"
		case st.Staged != nil && r.Equal(st.Staged.Root):
			role = "staged"
		}
		s.Roots = append(s.Roots, describe(r.Subject, ca.Fingerprint(r), r.NotAfter, role))
	}
	if st.Staged != nil {
		c := describe(st.Staged.Cert.Subject, ca.Fingerprint(st.Staged.Cert), st.Staged.Cert.NotAfter, "")
		s.Staged = &c
	}
	return s
}

func printStatus(w io.Writer, s Status) {
	fmt.Fprintf(w, "CA directory %s\nphase:   %s\n", s.Dir, s.Phase)
	if s.Pending != "" {
		fmt.Fprintf(w, "pending: an interrupted %q step; run `trellis ca rotate %s` to finish it\n", s.Pending, s.Pending)
	}
	fmt.Fprintf(w, "issuer:  %s (sha256 %s, expires %s)\n", s.Issuer.Subject, s.Issuer.Fingerprint, s.Issuer.NotAfter.Format(time.RFC3339))
	fmt.Fprintf(w, "bundle:  %s (point proxies' --ca-root-cert here)\n", s.Bundle)
	for i, r := range s.Roots {
		fmt.Fprintf(w, "root %d:  %s [%s] sha256 %s, expires %s\n", i+1, r.Subject, r.Role, r.Fingerprint, r.NotAfter.Format(time.RFC3339))
	}
	if s.Staged != nil {
		fmt.Fprintf(w, "staged issuer: %s (sha256 %s), in %s/next/\n", s.Staged.Subject, s.Staged.Fingerprint, s.Dir)
	}
}
