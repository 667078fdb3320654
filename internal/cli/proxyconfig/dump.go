package proxyconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	// Types the tables read inside Any fields.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/opaque"
)

// Section names a part of a config dump, as the subcommands do.
type Section string

// Sections of a config dump.
const (
	Clusters  Section = "clusters"
	Endpoints Section = "endpoints"
	Listeners Section = "listeners"
	Routes    Section = "routes"
	Secrets   Section = "secrets"
)

// Dump is a parsed config dump: the resources of each type, whichever of
// the two formats it came in.
type Dump struct {
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	// Secrets are the secrets the dump says the proxy holds (Envoy's
	// SecretsConfigDump); the control plane's dump has none.
	Secrets []Secret
	// Problems lists resources the proxy could not render into its dump
	// (the sidecar writes {"error": ...} in their place); they are missing
	// from the slices above.
	Problems []string
	// raw keeps each section's JSON as it was read, for -o json.
	raw map[Section]json.RawMessage
}

// Secret is one secret of a SecretsConfigDump.
type Secret struct {
	Name string
	// Status is ACTIVE or WARMING (static secrets are ACTIVE).
	Status string
}

// Raw returns a section's JSON as it was read (nil when the dump has no
// such section).
func (d *Dump) Raw(s Section) json.RawMessage { return d.raw[s] }

// Parse reads a config dump in either format:
//
//   - Envoy's admin ConfigDump ({"configs": [{"@type": ".../ClustersConfigDump",
//     ...}, ...]}), which the control plane's /debug/config_dump and Envoy's
//     /config_dump serve;
//   - the Trellis sidecar's /config_dump ({"clusters": {"<name>": <Cluster>},
//     "endpoints": {...}, "listeners": {...}, "routes": {...}}).
//
// Any-typed fields of types this binary does not link are skipped, not
// rejected, so dumps of newer proxies still parse.
func Parse(b []byte) (*Dump, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("config dump: not a JSON object: %w", err)
	}
	if _, ok := top["configs"]; ok {
		return parseEnvoy(b, top["configs"])
	}
	return parseSidecar(top)
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: &opaque.Resolver{}}

func parseEnvoy(b, configs json.RawMessage) (*Dump, error) {
	var cd adminv3.ConfigDump
	if err := unmarshal.Unmarshal(b, &cd); err != nil {
		return nil, fmt.Errorf("config dump: %w", err)
	}
	d := &Dump{raw: map[Section]json.RawMessage{}}
	var rawConfigs []json.RawMessage
	if err := json.Unmarshal(configs, &rawConfigs); err != nil {
		return nil, fmt.Errorf("config dump: configs: %w", err)
	}
	for k, a := range cd.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue // a section of a type this binary does not know
		}
		var sec Section
		switch v := m.(type) {
		case *adminv3.ClustersConfigDump:
			sec = Clusters
			for _, c := range v.GetStaticClusters() {
				add(&d.Clusters, c.GetCluster())
			}
			for _, c := range v.GetDynamicActiveClusters() {
				add(&d.Clusters, c.GetCluster())
			}
			for _, c := range v.GetDynamicWarmingClusters() {
				add(&d.Clusters, c.GetCluster())
			}
		case *adminv3.EndpointsConfigDump:
			sec = Endpoints
			for _, e := range v.GetStaticEndpointConfigs() {
				add(&d.Endpoints, e.GetEndpointConfig())
			}
			for _, e := range v.GetDynamicEndpointConfigs() {
				add(&d.Endpoints, e.GetEndpointConfig())
			}
		case *adminv3.ListenersConfigDump:
			sec = Listeners
			for _, l := range v.GetStaticListeners() {
				add(&d.Listeners, l.GetListener())
			}
			for _, l := range v.GetDynamicListeners() {
				switch {
				case l.GetActiveState() != nil:
					add(&d.Listeners, l.GetActiveState().GetListener())
				case l.GetWarmingState() != nil:
					add(&d.Listeners, l.GetWarmingState().GetListener())
				}
			}
		case *adminv3.RoutesConfigDump:
			sec = Routes
			for _, r := range v.GetStaticRouteConfigs() {
				add(&d.Routes, r.GetRouteConfig())
			}
			for _, r := range v.GetDynamicRouteConfigs() {
				add(&d.Routes, r.GetRouteConfig())
			}
		case *adminv3.SecretsConfigDump:
			sec = Secrets
			for _, s := range v.GetStaticSecrets() {
				d.Secrets = append(d.Secrets, Secret{Name: s.GetName(), Status: "ACTIVE"})
			}
			for _, s := range v.GetDynamicActiveSecrets() {
				d.Secrets = append(d.Secrets, Secret{Name: s.GetName(), Status: "ACTIVE"})
			}
			for _, s := range v.GetDynamicWarmingSecrets() {
				d.Secrets = append(d.Secrets, Secret{Name: s.GetName(), Status: "WARMING"})
			}
		default:
			continue
		}
		if k < len(rawConfigs) {
			d.raw[sec] = rawConfigs[k]
		}
	}
	return d, nil
}

// add unmarshals an Any into a new T and appends it; Anys that do not hold
// a T (or are absent) are skipped.
func add[T proto.Message](dst *[]T, a interface {
	GetTypeUrl() string
	GetValue() []byte
}) {
	if a == nil || a.GetTypeUrl() == "" {
		return
	}
	var zero T
	m := zero.ProtoReflect().New().Interface()
	if !strings.HasSuffix(a.GetTypeUrl(), "/"+string(m.ProtoReflect().Descriptor().FullName())) {
		return
	}
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return
	}
	*dst = append(*dst, m.(T))
}

// sidecarSections maps the sidecar's dump keys to message types.
var sidecarSections = []struct {
	sec Section
	new func() proto.Message
}{
	{Clusters, func() proto.Message { return &clusterv3.Cluster{} }},
	{Endpoints, func() proto.Message { return &endpointv3.ClusterLoadAssignment{} }},
	{Listeners, func() proto.Message { return &listenerv3.Listener{} }},
	{Routes, func() proto.Message { return &routev3.RouteConfiguration{} }},
}

func parseSidecar(top map[string]json.RawMessage) (*Dump, error) {
	d := &Dump{raw: map[Section]json.RawMessage{}}
	found := false
	for _, s := range sidecarSections {
		raw, ok := top[string(s.sec)]
		if !ok {
			continue
		}
		found = true
		d.raw[s.sec] = raw
		var byName map[string]json.RawMessage
		if err := json.Unmarshal(raw, &byName); err != nil {
			return nil, fmt.Errorf("config dump: %s: want an object of resources by name: %w", s.sec, err)
		}
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			var failed struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(byName[n], &failed) == nil && failed.Error != "" {
				d.Problems = append(d.Problems, fmt.Sprintf("%s %q: the proxy could not dump it: %s", s.sec, n, failed.Error))
				continue
			}
			m := s.new()
			if err := unmarshal.Unmarshal(byName[n], m); err != nil {
				return nil, fmt.Errorf("config dump: %s %q: %w", s.sec, n, err)
			}
			switch v := m.(type) {
			case *clusterv3.Cluster:
				d.Clusters = append(d.Clusters, v)
			case *endpointv3.ClusterLoadAssignment:
				d.Endpoints = append(d.Endpoints, v)
			case *listenerv3.Listener:
				d.Listeners = append(d.Listeners, v)
			case *routev3.RouteConfiguration:
				d.Routes = append(d.Routes, v)
			}
		}
	}
	if !found {
		return nil, errors.New(`config dump: neither Envoy's format ("configs") nor the sidecar's ("clusters", "listeners", ...)`)
	}
	return d, nil
}

// compactJSON re-indents a raw section for printing.
func compactJSON(raw json.RawMessage) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
