// Package ca implements `trellis ca`: the root rotation steps on a CA
// directory and its status, over package internal/ca (Stage, Promote,
// Retire, Load).
//
//	trellis ca rotate stage   --ca-dir DIR [--trust-domain TD]
//	trellis ca rotate stage   --ca-dir DIR --root-cert ROOT --root-key KEY [--cert-chain CHAIN]
//	trellis ca rotate promote --ca-dir DIR
//	trellis ca rotate retire  --ca-dir DIR
//	trellis ca status         --ca-dir DIR [-o text|json]
//
// stage without files generates a self-signed root (the trust domain
// taken from the current root unless given); with --root-cert and
// --root-key it stages a plugged-in CA: the key belongs to the first
// certificate of --cert-chain (an intermediate under ROOT), or to ROOT
// itself when there is no chain. Each step is idempotent and prints the
// phase before and after; a running control plane on the same directory
// applies it within a second, and proxies pick up root-cert.pem, the
// published bundle, when they next check it.
package ca
