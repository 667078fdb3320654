// Package app is Bookinfo, the sample application of Istio's documentation,
// in Go: four HTTP services that one program runs, one role per process.
//
//	browser ──► productpage ──┬──► details
//	                          └──► reviews ──► ratings   (v2 black stars, v3 red; v1 no call)
//
// Every service listens on :9080 by default and finds the others at
// http://details:9080, http://reviews:9080 and http://ratings:9080, so the
// same binary runs unchanged on Kubernetes (examples/bookinfo/kube). In
// Trellis's local mode each workload listens on its own loopback address
// and sends its calls through its sidecar: Config.Outbound dials every call
// to the sidecar's explicit proxy while the Host header keeps naming the
// service, which is what the sidecar routes on.
//
// Behaviour kept from Istio's sample, because its routing and
// fault-injection tasks depend on it:
//
//   - every call carries the incoming tracing and identity headers
//     verbatim (ForwardedHeaders) and end-user; "signing in" (POST /login)
//     only stores a name in a cookie, which productpage sends as end-user;
//   - productpage waits 3 s for details and tries reviews twice with 3 s
//     each; reviews v2 waits 10 s for ratings and v3 2.5 s;
//   - a failed backend never fails the page: it shows "Sorry, product
//     details/reviews are currently unavailable for this book.", and a
//     review whose rating could not be fetched says "Ratings service is
//     currently unavailable";
//   - the page names the reviews instance that answered ("reviews-v2") in
//     the element with id reviews-served-by.
//
// Ownership: a Service is built by New from a Config (ParseArgs reads it
// from the command line and the environment) and owns its upstream client;
// the ratings role's posted ratings live in a mutex-guarded store owned by
// its handler. Nothing is global.
package app
