// Package freeport picks TCP ports for processes that will bind them
// later (trellis up's workloads, test clusters' etcd and kube-apiserver).
// Asking the kernel for port 0 and closing the listener leaves a window in
// which any other bind to port 0 can get the same port; Pick avoids it by
// choosing outside the kernel's ephemeral range.
package freeport
