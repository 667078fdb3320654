package rbac

import "context"

// Dynamic metadata keys of an RBAC filter's shadow evaluation (after its
// shadow_rules_stat_prefix), as Envoy writes them.
const (
	ShadowEngineResult      = "shadow_engine_result"
	ShadowEffectivePolicyID = "shadow_effective_policy_id"
)

type connMetadataKey struct{}

// ContextWithMetadata returns ctx carrying md, the dynamic metadata of one
// connection: network filters (the RBAC filter's shadow result, read by
// the ext_authz filter's filter_enabled_metadata) hand it down the chain
// in the context they pass to the next filter's Serve. md belongs to the
// connection's goroutine; filters add to it, never share it.
func ContextWithMetadata(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, connMetadataKey{}, md)
}

// MetadataFromContext returns the connection's dynamic metadata, nil when
// no filter has written any.
func MetadataFromContext(ctx context.Context) Metadata {
	md, _ := ctx.Value(connMetadataKey{}).(Metadata)
	return md
}
