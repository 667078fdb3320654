package route

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// httpSource is one HTTPRoute to translate.
type httpSource struct {
	route *networking.HTTPRoute
	// ns resolves the short host names of its destinations ("" when they
	// are already resolved).
	ns string
	// index is the position of the (delegating) route in the root
	// VirtualService, for messages.
	index int
}

// expandDelegates lists the HTTP routes of a root VirtualService with each
// delegating route replaced by the routes of its delegate, merged with it
// as Istio does (mergeHTTPRoutes): a delegate route is kept when each of its
// matches fits inside some match of the root route, and takes the root's
// fields it leaves unset. Istio supports one level of delegation; a
// delegate's own delegating routes (and so any loop) are skipped, as are
// delegates that are missing, have hosts, or are not exported to the root's
// namespace. Each skip is reported.
func expandDelegates(sc *model.Scope, vs config.Config) ([]httpSource, []error) {
	spec := vs.Spec.(*networking.VirtualService)
	out := make([]httpSource, 0, len(spec.GetHttp()))
	var errs []error
	snap := sc.Snapshot()
	for i, root := range spec.GetHttp() {
		d := root.GetDelegate()
		if d == nil {
			out = append(out, httpSource{route: root, ns: vs.Namespace, index: i})
			continue
		}
		ns := d.GetNamespace()
		if ns == "" {
			ns = vs.Namespace
		}
		where := fmt.Sprintf("%s: http route %q: delegate %s/%s", vsName(vs), routeLabel(root, i), ns, d.GetName())
		dc, ok := snap.Config(config.Key{Kind: schema.VirtualService, Namespace: ns, Name: d.GetName()})
		if !ok {
			errs = append(errs, fmt.Errorf("%s not found; route skipped", where))
			continue
		}
		dspec, ok := dc.Spec.(*networking.VirtualService)
		if !ok || len(dspec.GetHosts()) > 0 {
			errs = append(errs, fmt.Errorf("%s has hosts, so it is not a delegate; route skipped", where))
			continue
		}
		vis := model.NewVisibility(dspec.GetExportTo(), dc.Namespace, snap.Mesh.GetDefaultVirtualServiceExportTo())
		if !vis.VisibleTo(vs.Namespace) {
			errs = append(errs, fmt.Errorf("%s is not exported to namespace %s; route skipped", where, vs.Namespace))
			continue
		}
		// Resolve short names where they were written before merging: the
		// root's fields may end up in the delegate's routes.
		resolvedRoot := resolvedCopy(snap, root, vs.Namespace)
		for j, sub := range dspec.GetHttp() {
			if next := sub.GetDelegate(); next != nil {
				kind := "nested delegation is not supported"
				nextNS := next.GetNamespace()
				if nextNS == "" {
					nextNS = dc.Namespace
				}
				if (nextNS == dc.Namespace && next.GetName() == dc.Name) || (nextNS == vs.Namespace && next.GetName() == vs.Name) {
					kind = "delegation loop"
				}
				errs = append(errs, fmt.Errorf("%s: route %q delegates to %s/%s: %s; skipped", where, routeLabel(sub, j), nextNS, next.GetName(), kind))
				continue
			}
			merged, ok := mergeHTTPRoute(resolvedRoot, resolvedCopy(snap, sub, dc.Namespace))
			if !ok {
				errs = append(errs, fmt.Errorf("%s: route %q matches nothing the root route matches; skipped", where, routeLabel(sub, j)))
				continue
			}
			out = append(out, httpSource{route: merged, index: i})
		}
	}
	return out, errs
}

// resolvedCopy copies an HTTPRoute with the short host names of its
// destinations and mirrors completed in namespace ns.
func resolvedCopy(snap *model.Snapshot, in *networking.HTTPRoute, ns string) *networking.HTTPRoute {
	out := proto.Clone(in).(*networking.HTTPRoute)
	for _, d := range out.GetRoute() {
		if d.GetDestination() != nil {
			d.Destination.Host = snap.ResolveHost(d.Destination.GetHost(), ns)
		}
	}
	if out.GetMirror() != nil {
		out.Mirror.Host = snap.ResolveHost(out.Mirror.GetHost(), ns)
	}
	for _, m := range out.GetMirrors() {
		if m.GetDestination() != nil {
			m.Destination.Host = snap.ResolveHost(m.Destination.GetHost(), ns)
		}
	}
	return out
}

// mergeHTTPRoute merges a delegate route (owned, modified) into the root
// route's frame. It reports false when the matches conflict.
func mergeHTTPRoute(root, sub *networking.HTTPRoute) (*networking.HTTPRoute, bool) {
	matches, ok := mergeMatches(root.GetMatch(), sub.GetMatch())
	if !ok {
		return nil, false
	}
	sub.Match = matches
	sub.Delegate = nil
	sub.Name = joinNames(root.GetName(), sub.GetName())
	if sub.Rewrite == nil {
		sub.Rewrite = root.Rewrite
	}
	if sub.DirectResponse == nil {
		sub.DirectResponse = root.DirectResponse
	}
	if sub.Timeout == nil {
		sub.Timeout = root.Timeout
	}
	if sub.Retries == nil {
		sub.Retries = root.Retries
	}
	if sub.Fault == nil {
		sub.Fault = root.Fault
	}
	if sub.Mirror == nil {
		sub.Mirror = root.Mirror
	}
	if sub.MirrorPercent == nil { //nolint:staticcheck // deprecated field still honoured
		sub.MirrorPercent = root.MirrorPercent //nolint:staticcheck
	}
	if sub.MirrorPercentage == nil {
		sub.MirrorPercentage = root.MirrorPercentage
	}
	if sub.Mirrors == nil {
		sub.Mirrors = root.Mirrors
	}
	if sub.CorsPolicy == nil {
		sub.CorsPolicy = root.CorsPolicy
	}
	if sub.Headers == nil {
		sub.Headers = root.Headers
	}
	return sub, true
}

// mergeMatches combines root and delegate matches: every delegate match
// must fit inside at least one root match, and yields one merged match per
// root match it fits.
func mergeMatches(root, sub []*networking.HTTPMatchRequest) ([]*networking.HTTPMatchRequest, bool) {
	if len(root) == 0 {
		return sub, true
	}
	if len(sub) == 0 {
		return root, true
	}
	var out []*networking.HTTPMatchRequest
	for _, s := range sub {
		found := false
		for _, r := range root {
			if matchConflict(r, s) {
				continue
			}
			out = append(out, mergeMatch(r, s))
			found = true
		}
		if !found {
			return nil, false
		}
	}
	return out, len(out) > 0
}

func mergeMatch(root, sub *networking.HTTPMatchRequest) *networking.HTTPMatchRequest {
	out := proto.Clone(sub).(*networking.HTTPMatchRequest)
	out.Name = joinNames(root.GetName(), sub.GetName())
	if out.Uri == nil {
		out.Uri = root.Uri
	}
	if out.Scheme == nil {
		out.Scheme = root.Scheme
	}
	if out.Method == nil {
		out.Method = root.Method
	}
	if out.Authority == nil {
		out.Authority = root.Authority
	}
	out.Headers = mergeMaps(root.GetHeaders(), sub.GetHeaders())
	out.WithoutHeaders = mergeMaps(root.GetWithoutHeaders(), sub.GetWithoutHeaders())
	out.QueryParams = mergeMaps(root.GetQueryParams(), sub.GetQueryParams())
	out.SourceLabels = mergeMaps(root.GetSourceLabels(), sub.GetSourceLabels())
	if out.Port == 0 {
		out.Port = root.GetPort()
	}
	if out.SourceNamespace == "" {
		out.SourceNamespace = root.GetSourceNamespace()
	}
	if len(out.Gateways) == 0 {
		out.Gateways = root.GetGateways()
	}
	if out.StatPrefix == "" {
		out.StatPrefix = root.GetStatPrefix()
	}
	return out
}

// matchConflict reports whether a delegate match can select requests the
// root match does not.
func matchConflict(root, leaf *networking.HTTPMatchRequest) bool {
	pairs := [][2]*networking.StringMatch{
		{root.GetUri(), leaf.GetUri()},
		{root.GetScheme(), leaf.GetScheme()},
		{root.GetMethod(), leaf.GetMethod()},
		{root.GetAuthority(), leaf.GetAuthority()},
	}
	for _, p := range pairs {
		if stringMatchConflict(p[0], p[1]) {
			return true
		}
	}
	for k, v := range leaf.GetHeaders() {
		if stringMatchConflict(root.GetHeaders()[k], v) {
			return true
		}
	}
	for k, v := range leaf.GetWithoutHeaders() {
		if stringMatchConflict(root.GetWithoutHeaders()[k], v) {
			return true
		}
	}
	for k, v := range leaf.GetQueryParams() {
		if stringMatchConflict(root.GetQueryParams()[k], v) {
			return true
		}
	}
	if root.GetIgnoreUriCase() != leaf.GetIgnoreUriCase() {
		return true
	}
	if root.GetPort() > 0 && leaf.GetPort() > 0 && root.GetPort() != leaf.GetPort() {
		return true
	}
	if root.GetSourceNamespace() != "" && leaf.GetSourceNamespace() != root.GetSourceNamespace() {
		return true
	}
	for k, v := range leaf.GetSourceLabels() {
		if rv, ok := root.GetSourceLabels()[k]; ok && rv != v {
			return true
		}
	}
	if len(root.GetGateways()) > 0 && len(leaf.GetGateways()) > 0 {
		for _, g := range leaf.GetGateways() {
			if !contains(root.GetGateways(), g) {
				return true
			}
		}
	}
	return false
}

// stringMatchConflict reports whether leaf can match a value root does not.
func stringMatchConflict(root, leaf *networking.StringMatch) bool {
	if root == nil || leaf == nil {
		return false
	}
	// Regexes cannot be compared: a regex on either side only goes with
	// an unset other side.
	if root.GetRegex() != "" && (leaf.GetRegex() != "" || leaf.GetPrefix() != "" || leaf.GetExact() != "") {
		return true
	}
	if leaf.GetRegex() != "" && (root.GetRegex() != "" || root.GetPrefix() != "" || root.GetExact() != "") {
		return true
	}
	if exact := root.GetExact(); exact != "" {
		return leaf.GetPrefix() != "" || leaf.GetExact() != exact
	}
	if prefix := root.GetPrefix(); prefix != "" {
		if leaf.GetPrefix() != "" {
			return !strings.HasPrefix(leaf.GetPrefix(), prefix)
		}
		if leaf.GetExact() != "" {
			return !strings.HasPrefix(leaf.GetExact(), prefix)
		}
	}
	return true
}

func joinNames(root, sub string) string {
	switch {
	case sub == "":
		return root
	case root == "":
		return sub
	}
	return root + "-" + sub
}

func mergeMaps[V any](root, sub map[string]V) map[string]V {
	if len(root) == 0 && len(sub) == 0 {
		return nil
	}
	out := make(map[string]V, len(root)+len(sub))
	for k, v := range root {
		out[k] = v
	}
	for k, v := range sub {
		out[k] = v
	}
	return out
}
