// Package sidecar wires the data-plane engine into the sidecar role: one
// xDS client feeding the cluster manager (CDS, EDS), the route tables
// (RDS) and the listener manager (LDS), whose filter chains use the tcp
// proxy and the HTTP connection manager; plus the admin endpoint.
//
//	xdsclient ──Apply(CDS)──► upstream/manager.ApplyClusters
//	          ──Apply(EDS)──► upstream/manager.ApplyEndpoints
//	          ──Apply(RDS)──► route.Compile ─► http.RouteTables
//	          ──Apply(LDS)──► listener.Manager.Update
//	                              filter chains: tcp_proxy ─► manager.Dial
//	                                             http_connection_manager ─► router ─► manager.RoundTrip
//	admin 127.0.0.1:15000  /ready /config_dump /clusters /quitquitquit
//	health :15021          /healthz/ready
//
// A rejected resource is NACKed with the component's error and the last
// good configuration keeps serving.
package sidecar
