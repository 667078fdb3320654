// Package bookinfo implements `trellis bookinfo ROLE [flags]`: the Bookinfo
// sample's services (examples/bookinfo/app) run by the trellis binary
// itself, so that `trellis up` can start the sample's workloads without a
// second program. It takes exactly the arguments of cmd/bookinfo.
package bookinfo
