// Package bootstrap holds the local-mode bootstrap credential: the secret a
// workload presents to the CA to get its first certificate when there is no
// Kubernetes service-account token to prove who it is. Later certificates
// are renewed with the previous one (mutual TLS), so the token only matters
// until the first certificate.
//
// Design. One random token per workload identity (namespace/service
// account), in a file the control plane's side writes and the workload's
// proxy reads:
//
//	<dir>/                       0700 (default <ca-dir>/bootstrap)
//	  <namespace>/               0700
//	    <service-account>.token  0600, one line:
//	                             trellis-bootstrap/v1/<namespace>/<service-account>/<secret>
//
// The secret is 32 bytes from crypto/rand, base64url. The proxy sends the
// whole line as "authorization: Bearer <token>", the header Istio's agent
// uses for its JWT; the Prefix tells the two kinds apart.
//
// Security decisions.
//   - Random tokens in files rather than HMAC tokens: a workload is revoked
//     by deleting one file, there is no signing key to protect or rotate, and
//     the files are the only state (no index to keep consistent). The cost is
//     one small file read per first certificate, which is rare.
//   - The identity in the token only selects the file; the secret is
//     compared in constant time with the file's whole content. A token names
//     exactly the identity it proves, so the CA issues nothing else.
//   - Namespace and service account are validated as DNS-1123 names before
//     they form a path, and files are opened through an os.Root confined to
//     the directory: no traversal, no symbolic link escapes, only regular
//     files, and a size limit on both the presented token and the file.
//   - Mint creates atomically (temporary file + link, which fails if the
//     token already exists), so concurrent minting agrees on one token.
//   - File permissions are the boundary between local workloads: run each
//     workload's proxy as a user that can read only its own token when that
//     matters (`trellis up` as root with network namespaces).
package bootstrap
