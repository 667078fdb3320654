// Package ca is the mesh's certificate authority without any transport: it
// loads or creates the signing material, checks untrusted CSRs, issues
// X.509 SVIDs and keeps the trust bundle through root rotations. The gRPC
// service (Istio's IstioCertificateService) is in package ca/server, the
// local-mode bootstrap tokens in ca/bootstrap.
//
//	LoadOrCreate(dir) ──► Issuer (verified, immutable) ──► New(Config) ──► Authority
//	                                                                         │
//	  authenticated identity + untrusted CSR ──► Issue ──► ParseCSR ─────────┤
//	                                                   ──► sign ──► [leaf, intermediates..., root]
//
// # Files
//
// A CA directory holds the four files of Istio's plugged-in CA ("cacerts"),
// so a self-signed CA persisted by Trellis and an operator's intermediate
// (what cert-manager based setups produce) load through one path, ParseIssuer:
//
//	<ca-dir>/               0700 when Trellis creates it
//	  ca-cert.pem           0644  the signing certificate (the root itself when self-signed)
//	  ca-key.pem            0600  its key (PKCS#8 when written by Trellis; PKCS#1 and SEC 1 are read too)
//	  cert-chain.pem        0644  ca-cert followed by the certificates up to the root
//	  root-cert.pem         0644  every trusted root, the issuing one first
//	  bootstrap/            local-mode bootstrap tokens (package ca/bootstrap)
//
// On first start, when none of the four files exists, LoadOrCreate
// generates a root and writes the files, each through a synced temporary
// file and a rename, the key 0600, ca-cert.pem last. When some files exist
// and others do not, or a file does not parse or verify, loading fails with
// a *FileError naming the file and the reason, and nothing is regenerated:
// a half-copied plugged-in CA must never be replaced by a fresh root that
// no workload trusts.
//
// Loading verifies: ca-cert.pem is exactly one CA certificate (CA:TRUE,
// keyCertSign), valid now, with an allowed key; ca-key.pem is one key that
// matches it; every root in root-cert.pem is a CA valid now; ca-cert
// chains through cert-chain.pem to one of the roots (cert-chain.pem may or
// may not repeat ca-cert first and the root last).
//
// # Self-signed root: ECDSA P-256, not Istio's RSA 2048
//
// Istio's generated root is RSA 2048. Trellis generates an ECDSA P-256 root
// because every certificate the mesh issues is signed with this key and
// every handshake verifies that signature: P-256 signing is far cheaper
// than RSA-2048 signing (BenchmarkIssue measures both), keys and chains are
// smaller, and Envoy (BoringSSL), Go and rustls all support it. A plugged-in
// CA may be RSA (2048 to 4096 bits) or ECDSA P-256/P-384. The root lives 10
// years, as Istio's does; the subject organisation is the trust domain.
//
// # Issuance
//
// Issue signs the CSR's public key, and nothing else from the CSR, for the
// identity the caller proved (Request.Identity, from an authenticator): a
// workload asking for another identity gets only its own. An SVID has
// exactly one URI SAN spiffe://<trust-domain>/ns/<ns>/sa/<sa> and no other
// SAN, an empty subject (so the SAN extension is critical), key usage
// digitalSignature|keyEncipherment, extended key usage serverAuth and
// clientAuth, CA:FALSE, a subject key identifier (SHA-256 of the key,
// truncated, RFC 7093) and the issuer's as authority key identifier, a
// random 128-bit serial, NotBefore backdated by ClockSkew (5 minutes) and
// NotAfter now + TTL, capped at the signing certificate's NotAfter. The
// TTL defaults to 24 h when the request asks for none (or <= 0); above the
// maximum (90 days) is an error, as in Istio.
//
// ParseCSR treats the CSR as hostile: at most MaxCSRBytes, exactly one
// "CERTIFICATE REQUEST" PEM block with nothing but whitespace around it, no
// PEM headers, a valid signature with SHA-256 or stronger, and a key that is
// ECDSA P-256/P-384 or RSA 2048 to 4096 bits. Each refusal is a
// *RequestError (the RPC edge returns InvalidArgument); other errors are the
// CA's own (Internal).
//
// # Root rotation
//
// Rotation is a value (Rotation) with three steps, each returning the next
// state: Stage trusts a new root alongside the issuing one, Promote issues
// under it while the old one stays trusted, Retire drops the old one. At
// most two roots are trusted at once; the issuing root is always first in
// the bundle and a staged root last, so a consumer that reads only the
// first certificate of root-cert.pem still gets the right anchor.
//
//	Stable ──Stage──► NewRootTrusted ──Promote──► NewRootIssuing ──Retire──► Stable
//	[old]             [old, new]                  [new, old]                 [new]
//
// # Root rotation on disk (dirstate.go, dirrotate.go)
//
// The persisted state is the directory itself: root-cert.pem in bundle
// order, and, while a root is staged, the next issuer's four files in
// <ca-dir>/next/. Load reads both and derives the phase; Stage, Promote
// and Retire (what `trellis ca rotate` runs) each move it one step:
//
//	Stage    next/ written as .next.tmp-* and renamed into place (absent or complete),
//	         then root-cert.pem := [old, new]
//	Promote  root-cert.pem := [new, old], then ca-key.pem, ca-cert.pem, cert-chain.pem
//	         := next/'s, then next/ renamed aside and removed
//	Retire   root-cert.pem := [new]
//
// Every file is replaced by a synced temporary file and a rename. A crash
// at any point leaves a directory Load reads (TestDirRotationCrash stops
// each step after every write, leaving a torn temporary file): next/
// written but not yet trusted reads as Pending "stage"; during Promote,
// ca-key.pem is written before ca-cert.pem, so a key that matches
// next/ca-cert.pem means the promotion started and Load takes next/ as the
// issuer (Pending "promote"). Running the interrupted step again finishes
// it; running a finished step again changes nothing (Result.Changed
// false); leftover temporary files are removed by the next step.
// LoadOrCreate reads through Load, so the control plane starts on such a
// directory too. Errors are *FileError values naming the file.
//
// The running control plane follows the directory (internal/discovery,
// rotation.go) and swaps the result in with Authority.SetIssuer. The
// published trust bundle is <ca-dir>/root-cert.pem: proxies in local mode
// point --ca-root-cert at it. Retire is the operator's call: it must come
// after every workload certificate issued under the old root was renewed
// (half a workload TTL after Promote, plus margin); nothing here checks it.
// Authority.SetIssuer swaps the signing material atomically; requests in
// flight finish with the old one.
package ca
