// Package registry defines the service registry seam: a Registry lists
// services and their endpoints and says when they change. The ServiceEntry
// registry (registry/serviceentry) implements it from configuration; a
// Kubernetes registry (Services, EndpointSlices, Pods) will implement it
// later; registry/aggregate joins several.
package registry
