// Package cacert keeps the mesh CA's signing material in Kubernetes
// Secrets of the control plane's namespace, as Istio does, and checks
// service-account tokens for the CA with the TokenReview API.
//
// Which CA signs (Load), first match wins:
//
//	Secret cacerts, Istio's plug-in form   ca-cert.pem ca-key.pem cert-chain.pem root-cert.pem
//	Secret cacerts, cert-manager's form    tls.crt (CA cert [+ chain]) tls.key ca.crt (root)
//	Secret istio-ca-secret                 the four keys above, written by Trellis
//	none of them                           a self-signed root is generated and stored in
//	                                       istio-ca-secret with create-if-absent: when several
//	                                       replicas start at once one create wins, and every
//	                                       replica (the losers re-read it) signs with the same root
//
// A Secret that exists but does not parse is an error naming the Secret
// and key; it is never overwritten. Follower re-reads the Secrets
// periodically and swaps a changed issuer into the running ca.Authority
// (an operator replacing cacerts, a rotation), keeping the last good one
// when the Secrets do not load.
//
// Reviewer implements ca/server.TokenReviewer: it sends the token to the
// API server's TokenReview API with the audiences the CA accepts (Istio's
// "istio-ca"), requires the review to be authenticated for one of them,
// and returns the namespace and service account of the username
// system:serviceaccount:<ns>:<sa>. The control plane's service account
// needs create on tokenreviews.authentication.k8s.io (the
// system:auth-delegator ClusterRole grants it).
package cacert
