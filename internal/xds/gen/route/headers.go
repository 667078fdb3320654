package route

import (
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// headerOps is a VirtualService Headers block in Envoy's terms.
type headerOps struct {
	requestAdd, responseAdd       []*corev3.HeaderValueOption
	requestRemove, responseRemove []string
	// authority is the Host set through the request headers (":authority"
	// or "host"), which Envoy expresses as a host rewrite.
	authority string
}

// translateHeaders converts header manipulation: "set" overwrites
// (OVERWRITE_IF_EXISTS_OR_ADD), "add" appends (APPEND_IF_EXISTS_OR_ADD),
// each sorted by name, set before add. Pseudo-headers and Host cannot be
// edited and are dropped; a request Host from set wins over one from add.
func translateHeaders(h *networking.Headers) headerOps {
	if h == nil {
		return headerOps{}
	}
	req, resp := h.GetRequest(), h.GetResponse()
	set, setAuthority := headerValues(req.GetSet(), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
	add, addAuthority := headerValues(req.GetAdd(), corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)
	respSet, _ := headerValues(resp.GetSet(), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
	respAdd, _ := headerValues(resp.GetAdd(), corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)
	ops := headerOps{
		requestAdd:     append(set, add...),
		responseAdd:    append(respSet, respAdd...),
		requestRemove:  editable(req.GetRemove()),
		responseRemove: editable(resp.GetRemove()),
		authority:      addAuthority,
	}
	if setAuthority != "" {
		ops.authority = setAuthority
	}
	return ops
}

func headerValues(m map[string]string, action corev3.HeaderValueOption_HeaderAppendAction) ([]*corev3.HeaderValueOption, string) {
	if len(m) == 0 {
		return nil, ""
	}
	keys := sortedKeys(m)
	authority := ""
	out := make([]*corev3.HeaderValueOption, 0, len(m))
	for _, k := range keys {
		if strings.EqualFold(k, headerAuthority) || strings.EqualFold(k, "host") {
			authority = m[k]
		}
		if internalHeader(k) {
			continue
		}
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: m[k]},
			AppendAction: action,
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetHeader().GetKey() < out[j].GetHeader().GetKey() })
	return out, authority
}

// editable drops the headers Envoy does not let routes change.
func editable(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !internalHeader(k) {
			out = append(out, k)
		}
	}
	return out
}

func internalHeader(k string) bool {
	return strings.HasPrefix(k, ":") || strings.EqualFold(k, "host")
}
