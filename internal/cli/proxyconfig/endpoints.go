package proxyconfig

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// EndpointRow is one host of one cluster.
type EndpointRow struct {
	// Endpoint is ip:port (or a pipe path, or host name:port).
	Endpoint string
	// Status is the host's health: HEALTHY, UNHEALTHY, DEGRADED, DRAINING...
	Status string
	// Outlier is OK or FAILED (ejected by outlier detection); "-" when the
	// source does not know (the control plane's view).
	Outlier string
	Cluster string
}

// EDSEndpoints returns the endpoints of the dump's EDS assignments and of
// its clusters' inline load assignments (STATIC and DNS clusters). Outlier
// state lives only in the proxy, so Outlier is "-".
func EDSEndpoints(d *Dump) []EndpointRow {
	var rows []EndpointRow
	addCLA := func(cluster string, cla *endpointv3.ClusterLoadAssignment) {
		for _, lle := range cla.GetEndpoints() {
			for _, le := range lle.GetLbEndpoints() {
				rows = append(rows, EndpointRow{
					Endpoint: addressString(le.GetEndpoint().GetAddress()),
					Status:   healthString(le.GetHealthStatus()),
					Outlier:  "-",
					Cluster:  cluster,
				})
			}
		}
	}
	for _, cla := range d.Endpoints {
		addCLA(cla.GetClusterName(), cla)
	}
	for _, c := range d.Clusters {
		if la := c.GetLoadAssignment(); la != nil {
			addCLA(c.GetName(), la)
		}
	}
	return rows
}

func addressString(a *corev3.Address) string {
	if sa := a.GetSocketAddress(); sa != nil {
		return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
	}
	if p := a.GetPipe(); p != nil {
		return p.GetPath()
	}
	if ia := a.GetEnvoyInternalAddress(); ia != nil {
		return "internal:" + ia.GetServerListenerName()
	}
	return "-"
}

// healthString names an EDS health status; UNKNOWN counts as HEALTHY, as
// Envoy treats it.
func healthString(h corev3.HealthStatus) string {
	if h == corev3.HealthStatus_UNKNOWN {
		return "HEALTHY"
	}
	return h.String()
}

// ParseAdminClusters reads a proxy's /clusters?format=json: Envoy's
// envoy.admin.v3.Clusters ({"cluster_statuses": [...]}), which the Trellis
// sidecar serves too, or Trellis's own view ([{"Name": ..., "Hosts":
// [{"Address", "Health", "Outlier": {"Ejected"}}]}]), which it serves at
// ?format=trellis and older sidecars served at ?format=json.
func ParseAdminClusters(b []byte) ([]EndpointRow, error) {
	trimmed := strings.TrimSpace(string(b))
	if strings.HasPrefix(trimmed, "{") {
		return parseEnvoyClusters(b)
	}
	var clusters []struct {
		Name  string
		Hosts []struct {
			Address string
			// Health is the sidecar's host.Health: 0 healthy, 1 degraded,
			// 2 unhealthy.
			Health  int
			Outlier struct{ Ejected bool }
		}
	}
	if err := json.Unmarshal(b, &clusters); err != nil {
		return nil, fmt.Errorf("clusters: want a JSON array of clusters or Envoy's cluster_statuses: %w", err)
	}
	var rows []EndpointRow
	for _, c := range clusters {
		for _, h := range c.Hosts {
			status := "HEALTHY"
			switch h.Health {
			case 1:
				status = "DEGRADED"
			case 2:
				status = "UNHEALTHY"
			}
			rows = append(rows, EndpointRow{Endpoint: h.Address, Status: status, Outlier: outlierString(h.Outlier.Ejected), Cluster: c.Name})
		}
	}
	return rows, nil
}

func parseEnvoyClusters(b []byte) ([]EndpointRow, error) {
	var doc struct {
		ClusterStatuses []struct {
			Name         string `json:"name"`
			HostStatuses []struct {
				Address struct {
					SocketAddress struct {
						Address   string `json:"address"`
						PortValue uint32 `json:"port_value"`
					} `json:"socket_address"`
				} `json:"address"`
				HealthStatus struct {
					EDSHealthStatus    string `json:"eds_health_status"`
					FailedOutlierCheck bool   `json:"failed_outlier_check"`
				} `json:"health_status"`
			} `json:"host_statuses"`
		} `json:"cluster_statuses"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("clusters: %w", err)
	}
	var rows []EndpointRow
	for _, c := range doc.ClusterStatuses {
		for _, h := range c.HostStatuses {
			status := h.HealthStatus.EDSHealthStatus
			if status == "" || status == "UNKNOWN" {
				status = "HEALTHY"
			}
			sa := h.Address.SocketAddress
			rows = append(rows, EndpointRow{
				Endpoint: net.JoinHostPort(sa.Address, strconv.FormatUint(uint64(sa.PortValue), 10)),
				Status:   status, Outlier: outlierString(h.HealthStatus.FailedOutlierCheck), Cluster: c.Name,
			})
		}
	}
	return rows, nil
}

func outlierString(failed bool) string {
	if failed {
		return "FAILED"
	}
	return "OK"
}

// EndpointTable lists endpoints sorted by endpoint then cluster: ENDPOINT,
// STATUS, OUTLIER CHECK, CLUSTER, as istioctl proxy-config endpoints prints
// them. f.Cluster, f.Port, f.Address and f.Status narrow it.
func EndpointTable(rows []EndpointRow, f Filter) Table {
	t := Table{Header: []string{"ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"}}
	var kept []EndpointRow
	for _, r := range rows {
		host, port, _ := net.SplitHostPort(r.Endpoint)
		if (f.Cluster != "" && r.Cluster != f.Cluster) || (f.Status != "" && !strings.EqualFold(r.Status, f.Status)) ||
			(f.Address != "" && host != f.Address) || (f.Port != 0 && port != strconv.FormatUint(uint64(f.Port), 10)) {
			continue
		}
		kept = append(kept, r)
	}
	slices.SortStableFunc(kept, func(a, b EndpointRow) int {
		return cmp.Or(strings.Compare(a.Endpoint, b.Endpoint), strings.Compare(a.Cluster, b.Cluster))
	})
	for _, r := range kept {
		t.Rows = append(t.Rows, []string{r.Endpoint, r.Status, r.Outlier, r.Cluster})
	}
	return t
}
