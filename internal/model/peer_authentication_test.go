package model

import (
	"testing"

	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

const (
	paUnset      = security.PeerAuthentication_MutualTLS_UNSET
	paDisable    = security.PeerAuthentication_MutualTLS_DISABLE
	paPermissive = security.PeerAuthentication_MutualTLS_PERMISSIVE
	paStrict     = security.PeerAuthentication_MutualTLS_STRICT
)

// peerAuthn builds a PeerAuthentication; a nil selector makes it namespace
// (or, in the root namespace, mesh) wide; ports adds portLevelMtls.
func peerAuthn(ns, name string, created int, selector map[string]string, mode security.PeerAuthentication_MutualTLS_Mode, ports map[uint32]security.PeerAuthentication_MutualTLS_Mode) config.Config {
	pa := &security.PeerAuthentication{Mtls: &security.PeerAuthentication_MutualTLS{Mode: mode}}
	if selector != nil {
		pa.Selector = &typev1beta1.WorkloadSelector{MatchLabels: selector}
	}
	for p, m := range ports {
		if pa.PortLevelMtls == nil {
			pa.PortLevelMtls = map[uint32]*security.PeerAuthentication_MutualTLS{}
		}
		pa.PortLevelMtls[p] = &security.PeerAuthentication_MutualTLS{Mode: m}
	}
	return newConfig(schema.PeerAuthentication, ns, name, created, pa)
}

func TestComposePeerAuthentication(t *testing.T) {
	const root = "istio-system"
	app := map[string]string{"app": "shop", "version": "v1"}
	sel := map[string]string{"app": "shop"}
	noMTLSBlock := newConfig(schema.PeerAuthentication, root, "empty", 0, &security.PeerAuthentication{})
	type portWant struct {
		port uint32
		want MTLSMode
	}
	cases := []struct {
		name     string
		ns       string
		labels   map[string]string
		policies []config.Config
		want     MTLSMode
		ports    []portWant
		// chosen names the policies picked per level: mesh, namespace, workload.
		chosen [3]string
	}{
		{name: "no policy is permissive", ns: "shop", labels: app, want: MTLSPermissive},
		{
			name: "mesh strict", ns: "shop", labels: app, want: MTLSStrict,
			policies: []config.Config{peerAuthn(root, "default", 0, nil, paStrict, nil)},
			chosen:   [3]string{root + "/default", "", ""},
		},
		{
			name: "namespace overrides mesh", ns: "shop", labels: app, want: MTLSDisable,
			policies: []config.Config{
				peerAuthn(root, "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "default", 0, nil, paDisable, nil),
			},
			chosen: [3]string{root + "/default", "shop/default", ""},
		},
		{
			name: "namespace UNSET inherits mesh", ns: "shop", labels: app, want: MTLSStrict,
			policies: []config.Config{
				peerAuthn(root, "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "default", 0, nil, paUnset, nil),
			},
			chosen: [3]string{root + "/default", "shop/default", ""},
		},
		{
			name: "mesh policy without an mtls block keeps the default", ns: "shop", labels: app, want: MTLSPermissive,
			policies: []config.Config{noMTLSBlock},
			chosen:   [3]string{root + "/empty", "", ""},
		},
		{
			name: "workload overrides namespace", ns: "shop", labels: app, want: MTLSStrict,
			policies: []config.Config{
				peerAuthn("shop", "default", 0, nil, paPermissive, nil),
				peerAuthn("shop", "strict-shop", 0, sel, paStrict, nil),
			},
			chosen: [3]string{"", "shop/default", "shop/strict-shop"},
		},
		{
			name: "workload selector not matching", ns: "shop", labels: map[string]string{"app": "cart"}, want: MTLSDisable,
			policies: []config.Config{
				peerAuthn("shop", "default", 0, nil, paDisable, nil),
				peerAuthn("shop", "strict-shop", 0, sel, paStrict, nil),
			},
			chosen: [3]string{"", "shop/default", ""},
		},
		{
			name: "nil labels match no selector", ns: "shop", want: MTLSPermissive,
			policies: []config.Config{peerAuthn("shop", "strict-shop", 0, sel, paStrict, nil)},
		},
		{
			name: "workload UNSET inherits, port level overrides per target port", ns: "shop", labels: app, want: MTLSStrict,
			policies: []config.Config{
				peerAuthn(root, "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "ports", 0, sel, paUnset, map[uint32]security.PeerAuthentication_MutualTLS_Mode{
					8080: paDisable, 9090: paPermissive, 7070: paUnset,
				}),
			},
			ports:  []portWant{{8080, MTLSDisable}, {9090, MTLSPermissive}, {7070, MTLSStrict}, {1234, MTLSStrict}, {0, MTLSStrict}},
			chosen: [3]string{root + "/default", "", "shop/ports"},
		},
		{
			name: "port level UNSET inherits the workload's own mode", ns: "shop", labels: app, want: MTLSDisable,
			policies: []config.Config{
				peerAuthn("shop", "ports", 0, sel, paDisable, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: paUnset, 9090: paStrict}),
			},
			ports:  []portWant{{8080, MTLSDisable}, {9090, MTLSStrict}},
			chosen: [3]string{"", "", "shop/ports"},
		},
		{
			name: "oldest workload policy wins", ns: "shop", labels: app, want: MTLSDisable,
			policies: sorted(
				peerAuthn("shop", "a-newer", 20, sel, paStrict, nil),
				peerAuthn("shop", "z-older", 10, map[string]string{"version": "v1"}, paDisable, nil),
			),
			chosen: [3]string{"", "", "shop/z-older"},
		},
		{
			name: "equal creation times: first name wins", ns: "shop", labels: app, want: MTLSStrict,
			policies: sorted(
				peerAuthn("shop", "b", 10, sel, paDisable, nil),
				peerAuthn("shop", "a", 10, sel, paStrict, nil),
			),
			chosen: [3]string{"", "", "shop/a"},
		},
		{
			name: "oldest namespace policy wins even when UNSET", ns: "shop", labels: app, want: MTLSStrict,
			policies: sorted(
				peerAuthn(root, "mesh", 0, nil, paStrict, nil),
				peerAuthn("shop", "older", 1, nil, paUnset, nil),
				peerAuthn("shop", "newer", 2, nil, paDisable, nil),
			),
			chosen: [3]string{root + "/mesh", "shop/older", ""},
		},
		{
			name: "oldest mesh policy wins", ns: "shop", labels: app, want: MTLSDisable,
			policies: sorted(
				peerAuthn(root, "newer", 5, nil, paStrict, nil),
				peerAuthn(root, "older", 1, nil, paDisable, nil),
			),
			chosen: [3]string{root + "/older", "", ""},
		},
		{
			name: "selector policies in the root namespace apply to nobody", ns: "shop", labels: app, want: MTLSPermissive,
			policies: []config.Config{peerAuthn(root, "rooted", 0, sel, paStrict, nil)},
		},
		{
			name: "workload in the root namespace: root selector policy still ignored", ns: root, labels: app, want: MTLSDisable,
			policies: []config.Config{
				peerAuthn(root, "default", 0, nil, paDisable, nil),
				peerAuthn(root, "rooted", 0, sel, paStrict, nil),
			},
			chosen: [3]string{root + "/default", "", ""},
		},
		{
			name: "policies of other namespaces ignored", ns: "shop", labels: app, want: MTLSPermissive,
			policies: []config.Config{
				peerAuthn("other", "default", 0, nil, paStrict, nil),
				peerAuthn("other", "wl", 0, sel, paDisable, nil),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ComposePeerAuthentication(root, tc.ns, tc.labels, tc.policies)
			if got.Mode != tc.want {
				t.Errorf("mode = %v, want %v", got.Mode, tc.want)
			}
			for _, pw := range tc.ports {
				if m := got.ModeForPort(pw.port); m != pw.want {
					t.Errorf("port %d: mode = %v, want %v", pw.port, m, pw.want)
				}
			}
			if chosen := [3]string{got.Mesh, got.Namespace, got.Workload}; chosen != tc.chosen {
				t.Errorf("chosen policies = %q, want %q", chosen, tc.chosen)
			}
		})
	}
}

func sorted(cs ...config.Config) []config.Config {
	SortConfigs(cs)
	return cs
}

func TestNamespaceMTLSModeIgnoresWorkloadPolicies(t *testing.T) {
	const root = "istio-system"
	policies := []config.Config{
		peerAuthn(root, "default", 0, nil, paStrict, nil),
		peerAuthn("shop", "wl", 0, map[string]string{"app": "shop"}, paDisable, map[uint32]security.PeerAuthentication_MutualTLS_Mode{80: paDisable}),
		peerAuthn("plain", "default", 0, nil, paDisable, nil),
	}
	for ns, want := range map[string]MTLSMode{"shop": MTLSStrict, "plain": MTLSDisable, "other": MTLSStrict} {
		if got := NamespaceMTLSMode(root, ns, policies); got != want {
			t.Errorf("NamespaceMTLSMode(%s) = %v, want %v", ns, got, want)
		}
	}
	if got := NamespaceMTLSMode(root, "x", nil); got != MTLSPermissive {
		t.Errorf("no policies: %v, want PERMISSIVE", got)
	}
}

// TestSnapshotPeerAuthentication goes through the snapshot index with a
// custom root namespace from the mesh config.
func TestSnapshotPeerAuthentication(t *testing.T) {
	mesh := DefaultMesh()
	mesh.RootNamespace = "mesh-root"
	snap := NewSnapshot(SnapshotInput{Mesh: mesh, Configs: []config.Config{
		peerAuthn("mesh-root", "default", 0, nil, paStrict, nil),
		peerAuthn("istio-system", "default", 0, nil, paDisable, nil), // not the root here
		peerAuthn("shop", "wl", 0, map[string]string{"app": "shop"}, paPermissive, map[uint32]security.PeerAuthentication_MutualTLS_Mode{8080: paDisable}),
	}})
	cases := []struct {
		ns     string
		labels map[string]string
		port   uint32
		want   MTLSMode
	}{
		{"shop", map[string]string{"app": "shop"}, 9080, MTLSPermissive},
		{"shop", map[string]string{"app": "shop"}, 8080, MTLSDisable},
		{"shop", map[string]string{"app": "cart"}, 8080, MTLSStrict},
		{"istio-system", nil, 0, MTLSDisable},
		{"mesh-root", nil, 0, MTLSStrict},
	}
	for _, tc := range cases {
		if got := snap.PeerAuthentication(tc.ns, tc.labels).ModeForPort(tc.port); got != tc.want {
			t.Errorf("%s %v port %d: %v, want %v", tc.ns, tc.labels, tc.port, got, tc.want)
		}
	}
	if got := snap.NamespaceMTLSMode("shop"); got != MTLSStrict {
		t.Errorf("NamespaceMTLSMode(shop) = %v, want STRICT", got)
	}
}

func TestMTLSModeString(t *testing.T) {
	for m, want := range map[MTLSMode]string{MTLSUnknown: "UNKNOWN", MTLSDisable: "DISABLE", MTLSPermissive: "PERMISSIVE", MTLSStrict: "STRICT"} {
		if m.String() != want {
			t.Errorf("%d.String() = %q, want %q", m, m.String(), want)
		}
	}
}
