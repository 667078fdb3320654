package proxyconfig

import (
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not JSON", "<html>", "not a JSON object"},
		{"neither format", `{"foo": {}}`, "neither Envoy's format"},
		{"sidecar section not an object", `{"clusters": []}`, `clusters: want an object of resources by name`},
		{"bad resource", `{"clusters": {"c1": {"name": 5}}}`, `clusters "c1"`},
		{"bad Envoy dump", `{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "version_info": 3}]}`, "config dump"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%s): %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

// Extension configs of types this binary does not link are skipped, not
// fatal; sections of unknown types are ignored; the sidecar's error
// entries become problems.
func TestParseLenient(t *testing.T) {
	envoy := `{"configs": [
	  {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {"node": {"id": "x"}}},
	  {"@type": "type.googleapis.com/example.v1.FutureConfigDump", "things": [1, 2]},
	  {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
	    {"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "outbound|80||a.ns.svc.cluster.local",
	      "type": "EDS", "typed_extension_protocol_options": {"x": {"@type": "type.googleapis.com/example.v1.Opts", "knob": true}}}}]},
	  {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump", "dynamic_active_secrets": [{"name": "default"}]}
	]}`
	d, err := Parse([]byte(envoy))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Clusters) != 1 || d.Clusters[0].GetName() != "outbound|80||a.ns.svc.cluster.local" {
		t.Errorf("clusters: %v", d.Clusters)
	}
	if d.Raw(Clusters) == nil || !strings.Contains(string(d.Raw(Clusters)), "knob") {
		t.Errorf("raw clusters section: %s", d.Raw(Clusters))
	}
	if tb := SecretTable(d); len(tb.Rows) != 1 || strings.Join(tb.Rows[0], "|") != "default|-|ACTIVE|-" {
		t.Errorf("secrets: %v", tb.Rows)
	}

	sidecar := `{"clusters": {"c1": {"name": "c1", "type": "STATIC"}}, "routes": {"9080": {"error": "unable to resolve"}}}`
	d, err = Parse([]byte(sidecar))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Clusters) != 1 || len(d.Routes) != 0 || len(d.Problems) != 1 || !strings.Contains(d.Problems[0], `routes "9080": the proxy could not dump it: unable to resolve`) {
		t.Errorf("clusters %d routes %d problems %q", len(d.Clusters), len(d.Routes), d.Problems)
	}
	if tb := SecretTable(d); len(tb.Rows) != 0 {
		t.Errorf("secrets of a plaintext dump: %v", tb.Rows)
	}
}

func TestParseAdminClusters(t *testing.T) {
	trellis := `[{"Name": "outbound|9080||r", "Hosts": [{"Address": "10.0.0.4:9080", "Health": 0, "Outlier": {"Ejected": true}},
	  {"Address": "10.0.0.5:9080", "Health": 2, "Outlier": {"Ejected": false}}]}]`
	envoy := `{"cluster_statuses": [{"name": "outbound|9080||r", "host_statuses": [
	  {"address": {"socket_address": {"address": "10.0.0.4", "port_value": 9080}}, "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": true}},
	  {"address": {"socket_address": {"address": "10.0.0.5", "port_value": 9080}}, "health_status": {"eds_health_status": "UNHEALTHY"}}]}]}`
	for name, in := range map[string]string{"trellis": trellis, "envoy": envoy} {
		rows, err := ParseAdminClusters([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tb := EndpointTable(rows, Filter{})
		got := []string{}
		for _, r := range tb.Rows {
			got = append(got, strings.Join(r, " "))
		}
		want := "10.0.0.4:9080 HEALTHY FAILED outbound|9080||r,10.0.0.5:9080 UNHEALTHY OK outbound|9080||r"
		if strings.Join(got, ",") != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
		if tb := EndpointTable(rows, Filter{Status: "unhealthy"}); len(tb.Rows) != 1 {
			t.Errorf("%s: --status unhealthy kept %d rows", name, len(tb.Rows))
		}
	}
	if _, err := ParseAdminClusters([]byte("nope")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestParseClusterName(t *testing.T) {
	for in, want := range map[string]ClusterName{
		"outbound|9080|v1|reviews.default.svc.cluster.local": {"outbound", 9080, "v1", "reviews.default.svc.cluster.local"},
		"inbound|9080||":     {"inbound", 9080, "", ""},
		"PassthroughCluster": {FQDN: "PassthroughCluster"},
		"a|b|c|d":            {FQDN: "a|b|c|d"},
	} {
		if got := ParseClusterName(in); got != want {
			t.Errorf("ParseClusterName(%q) = %+v, want %+v", in, got, want)
		}
	}
}
