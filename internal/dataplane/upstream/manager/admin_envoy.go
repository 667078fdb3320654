package manager

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// Envoy's two renderings of /clusters (source/server/admin/
// clusters_handler.cc), from the same ClusterStatus values as Trellis's
// own view:
//
//	WriteEnvoyText  the default text form, one line per field:
//	                <cluster>::<field>::<value>
//	                <cluster>::<host address>::<field>::<value>
//	EnvoyJSON       ?format=json: envoy.admin.v3.Clusters with the proto
//	                field names (Envoy's
//	                MessageUtil::getJsonStringFromMessage), as
//	                istioctl proxy-config endpoint reads it
//
// What Trellis does not know is left out rather than made up:
//   - the outlier::success_rate_average and ..._ejection_threshold lines
//     and JSON fields (the detector computes them, upstream.Instance does
//     not expose them yet);
//   - the per-host rq_error, rq_success and rq_timeout counters (Trellis
//     does not count them per host);
//   - health flags of active health checking (Trellis has none) and
//     pending_dynamic_removal (a removed host leaves the view at once).
//
// Unlike Envoy, warming clusters are listed too (without hosts until their
// assignment arrives); ClusterStatus.Warming says which ones are.

// hostStat is one of a host's counters or gauges.
type hostStat struct {
	name  string
	value uint64
	gauge bool
}

// hostStats are the per-host stats of Envoy's ALL_HOST_STATS that Trellis
// keeps, in its order (counters, then gauges; the JSON form keeps it, the
// text form sorts by name).
func hostStats(h *HostStatus) []hostStat {
	return []hostStat{
		{name: "cx_connect_fail", value: h.CxConnectFail},
		{name: "cx_total", value: h.CxTotal},
		{name: "rq_total", value: h.RqTotal},
		{name: "cx_active", value: gaugeValue(h.CxActive), gauge: true},
		{name: "rq_active", value: gaugeValue(h.RqActive), gauge: true},
	}
}

// gaugeValue is a gauge as Envoy's unsigned gauges show it: a count
// transiently below zero (a release racing the read) shows 0.
func gaugeValue(v int64) uint64 { return uint64(max(v, 0)) }

// envoyHosts returns the hosts in Envoy's order: by priority (its host
// sets), then as the load assignment lists them.
func envoyHosts(c *ClusterStatus) []*HostStatus {
	hosts := make([]*HostStatus, len(c.Hosts))
	for i := range c.Hosts {
		hosts[i] = &c.Hosts[i]
	}
	slices.SortStableFunc(hosts, func(a, b *HostStatus) int { return cmp.Compare(a.Priority, b.Priority) })
	return hosts
}

// healthFlags is Envoy's HostUtility::healthFlagsToString: "healthy", or
// the host's flags in HEALTH_FLAG_ENUM_VALUES order, each with a leading
// "/". EDS statuses map to flags as Envoy's setEdsHealthFlag does
// (UNHEALTHY and TIMEOUT: failed_eds_health; DEGRADED:
// degraded_eds_health; DRAINING: eds_status_draining).
func healthFlags(h *HostStatus) string {
	var b strings.Builder
	// failed_active_hc: no active health checking.
	if h.Outlier.Ejected {
		b.WriteString("/failed_outlier_check")
	}
	switch h.EDSHealth {
	case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_TIMEOUT:
		b.WriteString("/failed_eds_health")
	}
	// degraded_active_hc: no active health checking.
	if h.EDSHealth == corev3.HealthStatus_DEGRADED {
		b.WriteString("/degraded_eds_health")
	}
	// pending_dynamic_removal, pending_active_hc,
	// excluded_via_immediate_hc_fail, active_hc_timeout: not tracked.
	if h.EDSHealth == corev3.HealthStatus_DRAINING {
		b.WriteString("/eds_status_draining")
	}
	if b.Len() == 0 {
		return "healthy"
	}
	return b.String()
}

// edsHealth is the eds_health_status Envoy's JSON form reports: the
// status the EDS health flags stand for, HEALTHY when none is set (also
// for hosts EDS reported UNKNOWN).
func edsHealth(s corev3.HealthStatus) corev3.HealthStatus {
	switch s {
	case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_TIMEOUT:
		return corev3.HealthStatus_UNHEALTHY
	case corev3.HealthStatus_DEGRADED, corev3.HealthStatus_DRAINING:
		return s
	}
	return corev3.HealthStatus_HEALTHY
}

// successRates are a host's external and local-origin success rates over
// the last outlier detection interval, -1 when not computed (too few
// requests) and for hosts without outlier detection, as Envoy's null
// detector reports.
func successRates(h *HostStatus) (external, localOrigin float64) {
	if h.Outlier.Label == "" { // no monitor: no detection, or hosts not built yet
		return -1, -1
	}
	return h.Outlier.SuccessRate, h.Outlier.LocalOriginSuccessRate
}

// formatRate formats a success rate as Envoy's fmt "{}" formats a double:
// the shortest representation ("-1", "100", "66.66666666666667").
func formatRate(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// breakerPriorities are Envoy's routing priorities with their text names.
// (JSON: the enum's name, "" for DEFAULT, which proto3 JSON leaves out).
var breakerPriorities = [circuit.NumPriorities]struct {
	name, json string
}{
	circuit.Default: {"default", ""},
	circuit.High:    {"high", "HIGH"},
}

// WriteEnvoyText writes clusters in the text form of Envoy's /clusters.
func WriteEnvoyText(w io.Writer, clusters []ClusterStatus) error {
	b := bufio.NewWriter(w)
	for i := range clusters {
		c := &clusters[i]
		fmt.Fprintf(b, "%s::observability_name::%s\n", c.Name, c.ObservabilityName)
		for p, prio := range breakerPriorities {
			lim := &c.Breakers[p].Max
			fmt.Fprintf(b, "%s::%s_priority::max_connections::%d\n", c.Name, prio.name, lim[circuit.Connections])
			fmt.Fprintf(b, "%s::%s_priority::max_pending_requests::%d\n", c.Name, prio.name, lim[circuit.PendingRequests])
			fmt.Fprintf(b, "%s::%s_priority::max_requests::%d\n", c.Name, prio.name, lim[circuit.Requests])
			fmt.Fprintf(b, "%s::%s_priority::max_retries::%d\n", c.Name, prio.name, lim[circuit.Retries])
		}
		// Every cluster comes from CDS.
		fmt.Fprintf(b, "%s::added_via_api::true\n", c.Name)
		if c.EDSServiceName != "" {
			fmt.Fprintf(b, "%s::eds_service_name::%s\n", c.Name, c.EDSServiceName)
		}
		for _, h := range envoyHosts(c) {
			prefix := c.Name + "::" + h.Address + "::"
			stats := hostStats(h)
			slices.SortFunc(stats, func(a, b hostStat) int { return strings.Compare(a.name, b.name) })
			for _, s := range stats {
				fmt.Fprintf(b, "%s%s::%d\n", prefix, s.name, s.value)
			}
			sr, localSR := successRates(h)
			fmt.Fprintf(b, "%shostname::%s\n", prefix, h.Hostname)
			fmt.Fprintf(b, "%shealth_flags::%s\n", prefix, healthFlags(h))
			fmt.Fprintf(b, "%sweight::%d\n", prefix, h.Weight)
			fmt.Fprintf(b, "%sregion::%s\n", prefix, h.Locality.Region)
			fmt.Fprintf(b, "%szone::%s\n", prefix, h.Locality.Zone)
			fmt.Fprintf(b, "%ssub_zone::%s\n", prefix, h.Locality.SubZone)
			// Trellis reads no canary metadata and treats no host as one.
			fmt.Fprintf(b, "%scanary::false\n", prefix)
			fmt.Fprintf(b, "%spriority::%d\n", prefix, h.Priority)
			fmt.Fprintf(b, "%ssuccess_rate::%s\n", prefix, formatRate(sr))
			fmt.Fprintf(b, "%slocal_origin_success_rate::%s\n", prefix, formatRate(localSR))
		}
	}
	return b.Flush()
}

// The JSON form is envoy.admin.v3.Clusters in the proto3 JSON mapping as
// Envoy prints it (MessageUtil::getJsonStringFromMessage: proto field
// names, fields at their default value left out, uint64 as strings, enums
// by name). It is written from these mirrors of the messages rather than
// from go-control-plane's envoy/admin/v3, which would link the bootstrap,
// tap and overload protos into the proxy (+380 KB of binary, +115 KB of
// heap at init); the tests read it back with protojson into the real
// message and check it is that message's canonical JSON.
type (
	jsonClusters struct {
		ClusterStatuses []jsonClusterStatus `json:"cluster_statuses,omitempty"`
	}
	jsonClusterStatus struct {
		Name              string              `json:"name,omitempty"`
		AddedViaAPI       bool                `json:"added_via_api,omitempty"`
		HostStatuses      []jsonHostStatus    `json:"host_statuses,omitempty"`
		CircuitBreakers   jsonCircuitBreakers `json:"circuit_breakers"`
		ObservabilityName string              `json:"observability_name,omitempty"`
		EDSServiceName    string              `json:"eds_service_name,omitempty"`
	}
	// jsonCircuitBreakers is envoy.config.cluster.v3.CircuitBreakers with
	// the fields Envoy's /clusters sets: priority and the four limits
	// (UInt32Value wrappers, always set, so printed even when 0).
	jsonCircuitBreakers struct {
		Thresholds []jsonThresholds `json:"thresholds,omitempty"`
	}
	jsonThresholds struct {
		Priority           string `json:"priority,omitempty"` // "" is DEFAULT
		MaxConnections     uint32 `json:"max_connections"`
		MaxPendingRequests uint32 `json:"max_pending_requests"`
		MaxRequests        uint32 `json:"max_requests"`
		MaxRetries         uint32 `json:"max_retries"`
	}
	jsonHostStatus struct {
		Address                jsonAddress          `json:"address"`
		Stats                  []jsonSimpleMetric   `json:"stats,omitempty"`
		HealthStatus           jsonHostHealthStatus `json:"health_status"`
		SuccessRate            *jsonPercent         `json:"success_rate,omitempty"`
		Weight                 uint32               `json:"weight,omitempty"`
		Hostname               string               `json:"hostname,omitempty"`
		Priority               uint32               `json:"priority,omitempty"`
		LocalOriginSuccessRate *jsonPercent         `json:"local_origin_success_rate,omitempty"`
		Locality               jsonLocality         `json:"locality"`
	}
	jsonSimpleMetric struct {
		Type  string `json:"type,omitempty"` // "" is COUNTER
		Value uint64 `json:"value,omitempty,string"`
		Name  string `json:"name,omitempty"`
	}
	jsonHostHealthStatus struct {
		FailedOutlierCheck bool   `json:"failed_outlier_check,omitempty"`
		EDSHealthStatus    string `json:"eds_health_status,omitempty"`
	}
	jsonPercent struct {
		Value float64 `json:"value,omitempty"`
	}
	jsonLocality struct {
		Region  string `json:"region,omitempty"`
		Zone    string `json:"zone,omitempty"`
		SubZone string `json:"sub_zone,omitempty"`
	}
	// jsonAddress is envoy.config.core.v3.Address: one of the three.
	jsonAddress struct {
		SocketAddress        *jsonSocketAddress        `json:"socket_address,omitempty"`
		Pipe                 *jsonPipe                 `json:"pipe,omitempty"`
		EnvoyInternalAddress *jsonEnvoyInternalAddress `json:"envoy_internal_address,omitempty"`
	}
	jsonSocketAddress struct {
		Address   string `json:"address,omitempty"`
		PortValue uint32 `json:"port_value,omitempty"`
	}
	jsonPipe struct {
		Path string `json:"path,omitempty"`
	}
	jsonEnvoyInternalAddress struct {
		ServerListenerName string `json:"server_listener_name,omitempty"`
		EndpointID         string `json:"endpoint_id,omitempty"`
	}
)

// EnvoyJSON returns clusters as Envoy's /clusters?format=json.
func EnvoyJSON(clusters []ClusterStatus) ([]byte, error) {
	out := jsonClusters{ClusterStatuses: make([]jsonClusterStatus, 0, len(clusters))}
	for i := range clusters {
		c := &clusters[i]
		cs := jsonClusterStatus{
			Name:              c.Name,
			ObservabilityName: c.ObservabilityName,
			EDSServiceName:    c.EDSServiceName,
			AddedViaAPI:       true,
		}
		for p, prio := range breakerPriorities {
			lim := &c.Breakers[p].Max
			cs.CircuitBreakers.Thresholds = append(cs.CircuitBreakers.Thresholds, jsonThresholds{
				Priority:           prio.json,
				MaxConnections:     clampUint32(lim[circuit.Connections]),
				MaxPendingRequests: clampUint32(lim[circuit.PendingRequests]),
				MaxRequests:        clampUint32(lim[circuit.Requests]),
				MaxRetries:         clampUint32(lim[circuit.Retries]),
			})
		}
		for _, h := range envoyHosts(c) {
			hs := jsonHostStatus{
				Address:      jsonAddressOf(h.Addr),
				Hostname:     h.Hostname,
				Locality:     jsonLocality{Region: h.Locality.Region, Zone: h.Locality.Zone, SubZone: h.Locality.SubZone},
				Weight:       h.Weight,
				Priority:     h.Priority,
				HealthStatus: jsonHostHealthStatus{FailedOutlierCheck: h.Outlier.Ejected, EDSHealthStatus: edsHealth(h.EDSHealth).String()},
			}
			for _, s := range hostStats(h) {
				m := jsonSimpleMetric{Name: s.name, Value: s.value}
				if s.gauge {
					m.Type = "GAUGE"
				}
				hs.Stats = append(hs.Stats, m)
			}
			// Envoy leaves the rates out when they are unknown (-1).
			sr, localSR := successRates(h)
			if sr >= 0 {
				hs.SuccessRate = &jsonPercent{Value: sr}
			}
			if localSR >= 0 {
				hs.LocalOriginSuccessRate = &jsonPercent{Value: localSR}
			}
			cs.HostStatuses = append(cs.HostStatuses, hs)
		}
		out.ClusterStatuses = append(out.ClusterStatuses, cs)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// clampUint32 is a limit as Envoy's uint32 threshold fields carry it
// (Trellis keeps unlimited as MaxUint64).
func clampUint32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }

// jsonAddressOf is envoy.config.core.v3.Address of a.
func jsonAddressOf(a host.Address) jsonAddress {
	switch a.Kind {
	case host.Pipe:
		return jsonAddress{Pipe: &jsonPipe{Path: a.Path}}
	case host.Internal:
		return jsonAddress{EnvoyInternalAddress: &jsonEnvoyInternalAddress{ServerListenerName: a.ServerListener, EndpointID: a.EndpointID}}
	}
	ip := a.Host
	if a.IP.IsValid() {
		ip = a.IP.String()
	}
	return jsonAddress{SocketAddress: &jsonSocketAddress{Address: ip, PortValue: a.Port}}
}
