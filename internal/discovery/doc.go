// Package discovery assembles the control plane that `trellis discovery`
// runs: configuration stores, the service registry, the snapshot builder, the
// xDS generators and the ADS server, plus the monitoring endpoint.
//
//	file dir ──► file store ──────┐
//	memory  ──► memory store ─────┼► aggregate store ──► serviceentry registry ─┐
//	cluster ──► kube/configsource ┘        │                                   ├► registry/aggregate
//	        └─► registry/kube (Services, EndpointSlices, Pods) ─────────────────┘   (Kubernetes first)
//	                                       │                    │
//	                                       └──── changes ───────┘
//	                                           ▼
//	                          snapshot loop (builds model.Snapshot)
//	                                           ▼
//	                       xds server (debounce, push) ◄── gen.Generator
//
// With Config.SecureGRPCAddress set (the command's default :15012), Run
// also loads or creates the CA in Config.CADir (package ca) and serves, on
// one TLS server there, Istio's CA service (package ca/server),
// authenticating workloads by mesh certificate or by bootstrap token from
// CADir/bootstrap, and ADS over mutual TLS (xdsauth.go): the client
// certificate is verified as the CA verifies renewals, node metadata
// claiming another namespace or service account is PermissionDenied, no
// or a bad certificate is Unauthenticated, and the proxy is served as the
// certificate's service account. Config.XDSAddress "-" disables the
// plaintext port. Both xDS ports get the transport limits of
// xds/server.GRPCLimits (limits.go: streams per connection, keepalive,
// handshake, headers) with 4 MiB request messages; on the secure port they
// follow the CA's options.
//
// With Config.Kube set, one kube.Informers feeds both the CRD config
// source (Istio and Gateway API kinds; invalid objects are problems and
// their last valid version serves) and the cluster registry; Run shuts the
// informers down after its goroutines have stopped. ServiceEntries and
// WorkloadEntries are read from the merged store, so files and CRDs both
// define them. Gateway API objects are stored but not yet translated: they
// stay out of snapshots and cause no pushes.
//
// On a cluster with the CA (kubeplane.go): the CA's material comes from
// the system namespace's Secrets (kube/cacert: cacerts, else
// istio-ca-secret, created on first start) and is re-read every 10 s;
// service-account tokens for the audience istio-ca authenticate
// CreateCertificate (TokenReview) besides mesh certificates; with
// Config.Webhook the injection and validation webhooks are served with a
// certificate from the CA for the webhook Service's names; and replicas
// elect a leader (kube/leader) that alone writes: the root ConfigMap of
// every namespace (kube/rootcm) and the webhook configurations' caBundle.
// Every replica serves xDS, the CA and the webhooks.
//
// On every cluster, with or without the CA, replicas elect a leader, and
// the leader writes the analysis of the cluster's Istio objects (the
// analysis package over the latest snapshot and the store's problems,
// recomputed only when either changes) into their status (kube/status),
// once the first snapshot is out.
//
// The snapshot loop owns change collection: store and registry handlers only
// record what changed and wake it; it builds one immutable snapshot per wake
// and hands it to the xDS server, which debounces and pushes.
package discovery
