package model

import (
	"slices"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

const rootNS = "istio-system"

func TestParseEgressHosts(t *testing.T) {
	got := ParseEgressHosts([]string{"./*", "*/*", "~/*", "prod/*.example.com", "istio-system/*", "bare.example.com"}, "app")
	want := []EgressHost{
		{"app", "*"}, {"*", "*"}, {"~", "*"}, {"prod", "*.example.com"}, {"istio-system", "*"}, {"*", "bare.example.com"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParseEgressHosts = %+v, want %+v", got, want)
	}
	if got := ParseEgressHosts(nil, "app"); got == nil || len(got) != 0 {
		t.Errorf("ParseEgressHosts(nil) = %#v, want empty", got)
	}
}

func TestScopeServiceExportTo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exportTo []string
		defaults []string // mesh defaultServiceExportTo
		proxyNS  string
		want     bool
	}{
		{"default *: other namespace sees it", nil, []string{"*"}, "other", true},
		{"default .: other namespace does not", nil, []string{"."}, "other", false},
		{"default .: own namespace does", nil, []string{"."}, "svc-ns", true},
		{". hides from others", []string{"."}, []string{"*"}, "other", false},
		{". shows to own namespace", []string{"."}, []string{"*"}, "svc-ns", true},
		{"* shows to all", []string{"*"}, []string{"."}, "other", true},
		{"~ hides from all", []string{"~"}, nil, "svc-ns", false},
		{"named namespace sees it", []string{"other"}, nil, "other", true},
		{"unnamed namespace does not", []string{"other"}, nil, "third", false},
		{"named list excludes own namespace", []string{"other"}, nil, "svc-ns", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(SnapshotInput{
				Mesh:     meshWith(func(m *meshconfig.MeshConfig) { m.DefaultServiceExportTo = tc.defaults }),
				Services: []*Service{service("h.example.com", "svc-ns", tc.exportTo...)},
			})
			sc := s.Scope(sidecarProxy(tc.proxyNS, nil))
			_, got := sc.Service("h.example.com")
			if got != tc.want || (len(sc.Services) == 1) != tc.want {
				t.Errorf("visible = %v (Services %q), want %v", got, serviceKeys(sc.Services), tc.want)
			}
		})
	}
}

func TestScopeSidecarEgress(t *testing.T) {
	svcs := []*Service{
		service(fqdn("a", "app"), "app"),
		service(fqdn("b", "other"), "other"),
		service(fqdn("c", rootNS), rootNS),
		service("www.example.com", "ext"),
		service("api.example.com", "ext"),
	}
	const (
		a   = "a.app.svc.cluster.local (app)"
		b   = "b.other.svc.cluster.local (other)"
		c   = "c.istio-system.svc.cluster.local (istio-system)"
		www = "www.example.com (ext)"
		api = "api.example.com (ext)"
	)
	appSidecar := func(hosts ...string) []config.Config {
		return []config.Config{sidecar("app", "default", 0, nil, hosts...)}
	}
	for _, tc := range []struct {
		name    string
		configs []config.Config
		proxyNS string
		want    []string // sorted by host
	}{
		{"no Sidecar: everything", nil, "app", []string{a, api, b, c, www}},
		{"Sidecar without egress: everything", appSidecar(), "app", []string{a, api, b, c, www}},
		{"*/*", appSidecar("*/*"), "app", []string{a, api, b, c, www}},
		{"./* is the own namespace", appSidecar("./*"), "app", []string{a}},
		{"ns/*", appSidecar("other/*"), "app", []string{b}},
		{"./* and root namespace", appSidecar("./*", rootNS+"/*"), "app", []string{a, c}},
		{"*/host", appSidecar("*/www.example.com"), "app", []string{www}},
		{"*/wildcard", appSidecar("*/*.example.com"), "app", []string{api, www}},
		{"ns/host", appSidecar("ext/api.example.com"), "app", []string{api}},
		{"host in the wrong namespace", appSidecar("other/api.example.com"), "app", []string{}},
		{"~/* imports nothing", appSidecar("~/*"), "app", []string{}},
		{"short names are not completed in egress hosts", appSidecar("*/a"), "app", []string{}},
		{"several listeners add up", []config.Config{newConfig(schema.Sidecar, "app", "default", 0, &networking.Sidecar{
			Egress: []*networking.IstioEgressListener{{Hosts: []string{"./*"}}, {Port: &networking.SidecarPort{Number: 443}, Hosts: []string{"ext/*"}}},
		})}, "app", []string{a, api, www}},
		{"root default ./* means the proxy's namespace", []config.Config{sidecar(rootNS, "default", 0, nil, "./*", rootNS+"/*")}, "app", []string{a, c}},
		{"root default ./* for another namespace", []config.Config{sidecar(rootNS, "default", 0, nil, "./*")}, "other", []string{b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(SnapshotInput{Services: svcs, Configs: tc.configs})
			sc := s.Scope(sidecarProxy(tc.proxyNS, nil))
			if got := serviceKeys(sc.Services); !slices.Equal(got, tc.want) {
				t.Errorf("Services = %q, want %q", got, tc.want)
			}
			for _, svc := range svcs {
				_, ok := sc.Service(svc.Hostname)
				if want := slices.Contains(tc.want, svc.Key().String()); ok != want {
					t.Errorf("Service(%q) found = %v, want %v", svc.Hostname, ok, want)
				}
			}
		})
	}
}

func TestScopeSidecarsDoNotScopeGateways(t *testing.T) {
	s := NewSnapshot(SnapshotInput{
		Services: []*Service{service(fqdn("a", "app"), "app"), service("api.example.com", "ext")},
		Configs: []config.Config{
			withOutbound(sidecar("app", "default", 0, nil, "./*"), networking.OutboundTrafficPolicy_REGISTRY_ONLY),
		},
	})
	gw := sidecarProxy("app", nil)
	gw.Type = Router
	sc := s.Scope(gw)
	if sc.Sidecar != nil {
		t.Errorf("gateway got Sidecar %s", nsName(*sc.Sidecar))
	}
	if got := len(sc.Services); got != 2 {
		t.Errorf("gateway sees %d services, want 2", got)
	}
	if !sc.OutboundAllowAny() {
		t.Error("gateway took the Sidecar's outbound policy")
	}
}

func TestScopeOneServicePerHost(t *testing.T) {
	const host = "api.example.com"
	decl := func(ns string, exportTo ...string) *Service { return service(host, ns, exportTo...) }
	for _, tc := range []struct {
		name    string
		svcs    []*Service
		configs []config.Config
		proxyNS string
		want    string // namespace of the chosen service; "" for none
	}{
		{"own namespace preferred over earlier ones", []*Service{decl("a-ns"), decl("app"), decl("z-ns")}, nil, "app", "app"},
		{"own namespace preferred when sorted last", []*Service{decl("a-ns"), decl("zz")}, nil, "zz", "zz"},
		{"otherwise the first namespace", []*Service{decl("z-ns"), decl("app"), decl("a-ns")}, nil, "other", "a-ns"},
		{"hidden declarations are skipped", []*Service{decl("a-ns", "."), decl("b-ns"), decl("c-ns")}, nil, "other", "b-ns"},
		{"own declaration hidden from itself", []*Service{decl("app", "~"), decl("b-ns")}, nil, "app", "b-ns"},
		{"egress picks the namespace", []*Service{decl("app"), decl("z-ns")},
			[]config.Config{sidecar("app", "default", 0, nil, "z-ns/*")}, "app", "z-ns"},
		{"nothing visible", []*Service{decl("a-ns", "."), decl("b-ns", "~")}, nil, "other", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(SnapshotInput{Services: tc.svcs, Configs: tc.configs})
			sc := s.Scope(sidecarProxy(tc.proxyNS, nil))
			svc, ok := sc.Service(host)
			got := ""
			if ok {
				got = svc.Namespace
			}
			if got != tc.want {
				t.Errorf("Service(%q) from %q = %q, want %q", host, tc.proxyNS, got, tc.want)
			}
			wantN := 0
			if tc.want != "" {
				wantN = 1
			}
			if len(sc.Services) != wantN {
				t.Errorf("Services = %q, want only the chosen one", serviceKeys(sc.Services))
			}
		})
	}
}

func TestScopeVirtualServices(t *testing.T) {
	vss := []config.Config{
		virtualService("app", "mesh", 1, []string{"a"}),
		virtualService("app", "gateway-only", 2, []string{"a"}, gateways(rootNS+"/ingress")),
		virtualService("app", "mesh-and-gateway", 3, []string{"a"}, gateways("mesh", rootNS+"/ingress")),
		virtualService("app", "explicit-mesh", 0, []string{"a"}, gateways("mesh")),
		virtualService("app", "delegate", 4, nil),
		virtualService("app", "nobody", 5, []string{"a"}, vsExportTo("~")),
		virtualService("other", "private", 6, []string{"b"}, vsExportTo(".")),
		virtualService("other", "to-app", 7, []string{"b"}, vsExportTo("app")),
		virtualService("other", "public", 8, []string{"b"}),
		virtualService("ext", "wildcard", 9, []string{"*.example.com"}),
		virtualService("ext", "api", 10, []string{"api.example.com"}),
	}
	for _, tc := range []struct {
		name    string
		configs []config.Config
		proxyNS string
		defVS   []string // mesh defaultVirtualServiceExportTo; nil: "*"
		want    []string
	}{
		{"app: mesh-bound, visible, oldest first", nil, "app", nil, []string{
			"app/explicit-mesh", "app/mesh", "app/mesh-and-gateway", "other/to-app", "other/public", "ext/wildcard", "ext/api"}},
		{"other: own private VS", nil, "other", nil, []string{
			"app/explicit-mesh", "app/mesh", "app/mesh-and-gateway", "other/private", "other/public", "ext/wildcard", "ext/api"}},
		{"third: public only", nil, "third", nil, []string{
			"app/explicit-mesh", "app/mesh", "app/mesh-and-gateway", "other/public", "ext/wildcard", "ext/api"}},
		{"mesh default . keeps VSs without exportTo at home", nil, "third", []string{"."}, []string{}},
		{"mesh default . still honours explicit exportTo", nil, "app", []string{"."}, []string{
			"app/explicit-mesh", "app/mesh", "app/mesh-and-gateway", "other/to-app"}},
		{"egress ./*: own namespace's VSs", []config.Config{sidecar("app", "default", 0, nil, "./*")}, "app", nil, []string{
			"app/explicit-mesh", "app/mesh", "app/mesh-and-gateway"}},
		{"egress ns/* selects by the VS namespace", []config.Config{sidecar("app", "default", 0, nil, "other/*")}, "app", nil, []string{
			"other/to-app", "other/public"}},
		{"egress ns/fqdn matches short VS hosts", []config.Config{sidecar("app", "default", 0, nil, "other/"+fqdn("b", "other"))}, "app", nil, []string{
			"other/to-app", "other/public"}},
		{"egress host in another namespace does not import the VS", []config.Config{sidecar("app", "default", 0, nil, "app/"+fqdn("b", "other"))}, "app", nil, []string{}},
		{"egress exact host imports a wildcard VS", []config.Config{sidecar("app", "default", 0, nil, "*/api.example.com")}, "app", nil, []string{
			"ext/wildcard", "ext/api"}},
		{"egress wildcard imports exact VS", []config.Config{sidecar("app", "default", 0, nil, "ext/*.example.com")}, "app", nil, []string{
			"ext/wildcard", "ext/api"}},
		{"egress exact host does not import an unrelated VS", []config.Config{sidecar("app", "default", 0, nil, "*/www.example.org")}, "app", nil, []string{}},
		{"egress ~/*", []config.Config{sidecar("app", "default", 0, nil, "~/*")}, "app", nil, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mesh := DefaultMesh()
			if tc.defVS != nil {
				mesh.DefaultVirtualServiceExportTo = tc.defVS
			}
			s := NewSnapshot(SnapshotInput{Mesh: mesh, Configs: append(slices.Clone(vss), tc.configs...)})
			if got := nsNames(s.Scope(sidecarProxy(tc.proxyNS, nil)).VirtualServices); !slices.Equal(got, tc.want) {
				t.Errorf("VirtualServices =\n %q\nwant\n %q", got, tc.want)
			}
		})
	}
}

func TestScopeOutboundAllowAny(t *testing.T) {
	const (
		allow    = networking.OutboundTrafficPolicy_ALLOW_ANY
		registry = networking.OutboundTrafficPolicy_REGISTRY_ONLY
	)
	meshMode := func(m meshconfig.MeshConfig_OutboundTrafficPolicy_Mode) *meshconfig.MeshConfig {
		return meshWith(func(mc *meshconfig.MeshConfig) { mc.OutboundTrafficPolicy.Mode = m })
	}
	for _, tc := range []struct {
		name    string
		mesh    *meshconfig.MeshConfig
		configs []config.Config
		want    bool
	}{
		{"default mesh", nil, nil, true},
		{"mesh REGISTRY_ONLY", meshMode(meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY), nil, false},
		{"mesh ALLOW_ANY", meshMode(meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY), nil, true},
		{"Sidecar without policy follows the mesh", meshMode(meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY),
			[]config.Config{sidecar("app", "default", 0, nil, "*/*")}, false},
		{"Sidecar REGISTRY_ONLY overrides mesh ALLOW_ANY", nil,
			[]config.Config{withOutbound(sidecar("app", "default", 0, nil), registry)}, false},
		{"Sidecar ALLOW_ANY overrides mesh REGISTRY_ONLY", meshMode(meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY),
			[]config.Config{withOutbound(sidecar("app", "default", 0, nil), allow)}, true},
		{"root default Sidecar policy applies", nil,
			[]config.Config{withOutbound(sidecar(rootNS, "default", 0, nil), registry)}, false},
		{"Sidecar of another namespace does not apply", nil,
			[]config.Config{withOutbound(sidecar("other", "default", 0, nil), registry)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(SnapshotInput{Mesh: tc.mesh, Configs: tc.configs})
			if got := s.Scope(sidecarProxy("app", nil)).OutboundAllowAny(); got != tc.want {
				t.Errorf("OutboundAllowAny = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScopeAccessors(t *testing.T) {
	s := NewSnapshot(SnapshotInput{Configs: []config.Config{sidecar("app", "default", 0, nil, "./*")}})
	p := sidecarProxy("app", nil)
	sc := s.Scope(p)
	if sc.Proxy() != p || sc.Snapshot() != s || sc.Namespace != "app" {
		t.Error("Scope does not keep its inputs")
	}
	if sc.Sidecar == nil || nsName(*sc.Sidecar) != "app/default" {
		t.Errorf("Sidecar = %v", sc.Sidecar)
	}
}

func TestScopeDestinationRule(t *testing.T) {
	reviews := fqdn("reviews", "bookinfo")
	svcs := []*Service{
		service(reviews, "bookinfo"),
		service(fqdn("ratings", "bookinfo"), "bookinfo", "."),
		service("api.example.com", "ext"),
	}
	v1 := map[string]string{"app": "client", "version": "v1"}
	for _, tc := range []struct {
		name    string
		configs []config.Config
		proxy   *Proxy
		host    string
		mesh    *meshconfig.MeshConfig
		want    string // "ns/name"; "" for none
	}{
		{"proxy namespace beats service and root namespaces", []config.Config{
			newDR(rootNS, "root", 0, reviews),
			newDR("bookinfo", "svc", 0, reviews),
			newDR("shop", "mine", 9, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, "shop/mine"},
		{"service namespace beats root namespace", []config.Config{
			newDR(rootNS, "root", 0, reviews),
			newDR("bookinfo", "svc", 9, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, "bookinfo/svc"},
		{"root namespace as fallback", []config.Config{
			newDR(rootNS, "mesh-wide", 0, "*.local"),
		}, sidecarProxy("shop", nil), reviews, nil, rootNS + "/mesh-wide"},
		{"a less specific rule in the proxy namespace still beats an exact one elsewhere", []config.Config{
			newDR("shop", "wide", 0, "*.cluster.local"),
			newDR("bookinfo", "exact", 0, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, "shop/wide"},
		{"rules of unrelated namespaces are ignored", []config.Config{
			newDR("elsewhere", "dr", 0, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, ""},
		{"short host resolves in the rule's namespace", []config.Config{
			newDR("bookinfo", "short", 0, "reviews"),
		}, sidecarProxy("shop", nil), reviews, nil, "bookinfo/short"},
		{"short host of another namespace does not match", []config.Config{
			newDR("shop", "short", 0, "reviews"),
		}, sidecarProxy("shop", nil), reviews, nil, ""},
		{"host not covered", []config.Config{
			newDR("shop", "ratings", 0, fqdn("ratings", "bookinfo")),
		}, sidecarProxy("shop", nil), reviews, nil, ""},

		// exportTo
		{"exportTo . hides a service-namespace rule", []config.Config{
			newDR("bookinfo", "private", 0, reviews, exportTo(".")),
			newDR(rootNS, "root", 0, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, rootNS + "/root"},
		{"exportTo . applies in its own namespace", []config.Config{
			newDR("bookinfo", "private", 0, reviews, exportTo(".")),
		}, sidecarProxy("bookinfo", nil), reviews, nil, "bookinfo/private"},
		{"exportTo naming the proxy namespace", []config.Config{
			newDR("bookinfo", "to-shop", 0, reviews, exportTo("shop")),
		}, sidecarProxy("shop", nil), reviews, nil, "bookinfo/to-shop"},
		{"exportTo naming another namespace", []config.Config{
			newDR("bookinfo", "to-other", 0, reviews, exportTo("other")),
		}, sidecarProxy("shop", nil), reviews, nil, ""},
		{"exportTo ~ hides everywhere", []config.Config{
			newDR("bookinfo", "hidden", 0, reviews, exportTo("~")),
		}, sidecarProxy("shop", nil), reviews, nil, ""},
		{"exported elsewhere only: not applied at home", []config.Config{
			newDR("bookinfo", "to-shop", 0, reviews, exportTo("shop")),
			newDR(rootNS, "root", 0, reviews),
		}, sidecarProxy("bookinfo", nil), reviews, nil, rootNS + "/root"},
		{"root rule exported with .: hidden from other namespaces", []config.Config{
			newDR(rootNS, "root-private", 0, reviews, exportTo(".")),
		}, sidecarProxy("shop", nil), reviews, nil, ""},
		{"mesh default exportTo . hides rules without exportTo", []config.Config{
			newDR("bookinfo", "dr", 0, reviews),
		}, sidecarProxy("shop", nil), reviews,
			meshWith(func(m *meshconfig.MeshConfig) { m.DefaultDestinationRuleExportTo = []string{"."} }), ""},
		{"explicit exportTo * beats mesh default .", []config.Config{
			newDR("bookinfo", "dr", 0, reviews, exportTo("*")),
		}, sidecarProxy("shop", nil), reviews,
			meshWith(func(m *meshconfig.MeshConfig) { m.DefaultDestinationRuleExportTo = []string{"."} }), "bookinfo/dr"},

		// workloadSelector
		{"matching selector beats selector-less, even when newer", []config.Config{
			newDR("shop", "all", 0, reviews),
			newDR("shop", "v1-only", 5, reviews, drSelector(map[string]string{"version": "v1"})),
		}, sidecarProxy("shop", v1), reviews, nil, "shop/v1-only"},
		{"non-matching selector falls back to selector-less", []config.Config{
			newDR("shop", "all", 5, reviews),
			newDR("shop", "v2-only", 0, reviews, drSelector(map[string]string{"version": "v2"})),
		}, sidecarProxy("shop", v1), reviews, nil, "shop/all"},
		{"non-matching selector only: next namespace", []config.Config{
			newDR("shop", "v2-only", 0, reviews, drSelector(map[string]string{"version": "v2"})),
			newDR("bookinfo", "svc", 0, reviews),
		}, sidecarProxy("shop", v1), reviews, nil, "bookinfo/svc"},
		{"selector in the service namespace is ignored", []config.Config{
			newDR("bookinfo", "sel", 0, reviews, drSelector(map[string]string{"app": "client"})),
			newDR(rootNS, "root", 0, reviews),
		}, sidecarProxy("shop", v1), reviews, nil, rootNS + "/root"},
		{"selector in the root namespace is ignored", []config.Config{
			newDR(rootNS, "sel", 0, reviews, drSelector(map[string]string{"app": "client"})),
		}, sidecarProxy("shop", v1), reviews, nil, ""},
		{"selector rules are private even if exported", []config.Config{
			newDR("bookinfo", "sel", 0, reviews, drSelector(map[string]string{"app": "client"}), exportTo("*")),
		}, sidecarProxy("shop", v1), reviews, nil, ""},
		{"oldest of two matching selectors", []config.Config{
			newDR("shop", "sel-new", 2, reviews, drSelector(map[string]string{"app": "client"})),
			newDR("shop", "sel-old", 1, reviews, drSelector(map[string]string{"version": "v1"})),
		}, sidecarProxy("shop", v1), reviews, nil, "shop/sel-old"},

		// specificity and age
		{"exact host beats wildcard", []config.Config{
			newDR("shop", "wild", 0, "*.bookinfo.svc.cluster.local"),
			newDR("shop", "exact", 5, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, "shop/exact"},
		{"longer wildcard beats shorter", []config.Config{
			newDR("shop", "star", 0, "*"),
			newDR("shop", "local", 1, "*.local"),
			newDR("shop", "svc", 2, "*.svc.cluster.local"),
		}, sidecarProxy("shop", nil), reviews, nil, "shop/svc"},
		{"oldest wins a tie", []config.Config{
			newDR("shop", "newer", 2, reviews),
			newDR("shop", "older", 1, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, "shop/older"},
		{"same age: name order", []config.Config{
			newDR("shop", "b", 1, reviews),
			newDR("shop", "a", 1, reviews),
		}, sidecarProxy("shop", nil), reviews, nil, "shop/a"},
		{"wildcard service host", []config.Config{
			newDR("ext", "wild", 0, "*.example.com"),
		}, sidecarProxy("shop", nil), "api.example.com", nil, "ext/wild"},

		// the service namespace is that of the visible service
		{"hidden service: its namespace is not consulted", []config.Config{
			newDR("bookinfo", "ratings", 0, fqdn("ratings", "bookinfo")),
		}, sidecarProxy("shop", nil), fqdn("ratings", "bookinfo"), nil, ""},

		// proxies in the root namespace (gateways in istio-system)
		{"root proxy: service rule beats exported root catch-all", []config.Config{
			newDR(rootNS, "mesh-mtls", 0, "*.local"),
			newDR("bookinfo", "reviews", 5, reviews),
		}, sidecarProxy(rootNS, nil), reviews, nil, "bookinfo/reviews"},
		{"root proxy: private root rule comes first", []config.Config{
			newDR(rootNS, "gw-only", 0, "*.local", exportTo(".")),
			newDR("bookinfo", "reviews", 5, reviews),
		}, sidecarProxy(rootNS, nil), reviews, nil, rootNS + "/gw-only"},
		{"root proxy: exported root rule as fallback", []config.Config{
			newDR(rootNS, "mesh-mtls", 0, "*.local"),
		}, sidecarProxy(rootNS, nil), reviews, nil, rootNS + "/mesh-mtls"},
		{"root proxy: matching selector rule is private", []config.Config{
			newDR(rootNS, "gw-sel", 0, "*.local", drSelector(map[string]string{"app": "client"})),
			newDR("bookinfo", "reviews", 5, reviews),
		}, sidecarProxy(rootNS, v1), reviews, nil, rootNS + "/gw-sel"},
		{"no root namespace configured", []config.Config{
			newDR(rootNS, "mesh-mtls", 0, "*.local"),
		}, sidecarProxy("shop", nil), reviews, meshWith(func(m *meshconfig.MeshConfig) { m.RootNamespace = "" }), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(SnapshotInput{Mesh: tc.mesh, Services: svcs, Configs: tc.configs})
			c, ok := s.Scope(tc.proxy).DestinationRule(tc.host)
			got := ""
			if ok {
				got = nsName(c)
			}
			if got != tc.want {
				t.Errorf("DestinationRule(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
}

func TestScopeSubset(t *testing.T) {
	reviews := fqdn("reviews", "bookinfo")
	s := NewSnapshot(SnapshotInput{
		Services: []*Service{service(reviews, "bookinfo"), service("api.example.com", "ext")},
		Configs: []config.Config{
			newDR("bookinfo", "reviews", 0, "reviews", subsets("v1", "v2")),
			newDR("shop", "reviews-local", 0, reviews, subsets("v3")),
		},
	})
	for _, tc := range []struct {
		name    string
		proxyNS string
		host    string
		subset  string
		want    bool
	}{
		{"subset of the service-namespace rule", "other", reviews, "v1", true},
		{"second subset", "other", reviews, "v2", true},
		{"unknown subset", "other", reviews, "v9", false},
		{"subsets come from the chosen rule only", "shop", reviews, "v1", false},
		{"subset of the proxy-namespace rule", "shop", reviews, "v3", true},
		{"host without a rule", "other", "api.example.com", "v1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss, ok := s.Scope(sidecarProxy(tc.proxyNS, nil)).Subset(tc.host, tc.subset)
			if ok != tc.want {
				t.Fatalf("Subset(%q, %q) found = %v, want %v", tc.host, tc.subset, ok, tc.want)
			}
			if ok && (ss.GetName() != tc.subset || ss.GetLabels()["version"] != tc.subset) {
				t.Errorf("Subset = %v", ss)
			}
		})
	}
}
