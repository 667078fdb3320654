package main

import "context"

// directPair is the reference path without proxies: the client talks to the
// echo server. Added latency is measured against it.
type directPair struct{}

func init() { registerPair(directPair{}) }

func (directPair) Name() string         { return "direct" }
func (directPair) Available(*Env) error { return nil }

func (directPair) Start(_ context.Context, _ *Env, upstream string) (*Instance, error) {
	return &Instance{Addr: upstream, Stop: func() {}}, nil
}
