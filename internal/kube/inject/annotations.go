package inject

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// The pod annotations the injector reads (Istio's names).
const (
	annIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	annExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	annIncludeInboundPorts     = "traffic.sidecar.istio.io/includeInboundPorts"
	annExcludeInboundPorts     = "traffic.sidecar.istio.io/excludeInboundPorts"
	annIncludeOutboundPorts    = "traffic.sidecar.istio.io/includeOutboundPorts"
	annExcludeOutboundPorts    = "traffic.sidecar.istio.io/excludeOutboundPorts"
	annProxyConfig             = "proxy.istio.io/config"
	annProxyCPU                = "sidecar.istio.io/proxyCPU"
	annProxyMemory             = "sidecar.istio.io/proxyMemory"
	annProxyCPULimit           = "sidecar.istio.io/proxyCPULimit"
	annProxyMemoryLimit        = "sidecar.istio.io/proxyMemoryLimit"
	annProxyImage              = "sidecar.istio.io/proxyImage"
	annRewriteProbes           = "sidecar.istio.io/rewriteAppHTTPProbers"
	annNativeSidecar           = "sidecar.istio.io/nativeSidecar"
	annInterceptionMode        = "sidecar.istio.io/interceptionMode"
)

// Interception modes (sidecar.istio.io/interceptionMode, Istio's
// ProxyConfig.InterceptionMode): how traffic reaches the proxy.
const (
	// ModeRedirect captures with the nat table's REDIRECT (the default).
	ModeRedirect = "REDIRECT"
	// ModeTProxy captures with the mangle table's TPROXY target: no
	// connection tracking, transparent capture listeners, and a proxy that
	// needs CAP_NET_ADMIN.
	ModeTProxy = "TPROXY"
	// ModeNone installs no capture: no istio-init container; applications
	// reach the proxy explicitly.
	ModeNone = "NONE"
)

// InterceptionEnv carries the interception mode to the proxy, which sends
// it to the control plane as node metadata INTERCEPTION_MODE.
const InterceptionEnv = "ISTIO_META_INTERCEPTION_MODE"

// alwaysExcludedInboundPorts are the proxy's own ports, never captured
// (the order Istio writes them in).
const alwaysExcludedInboundPorts = "15090,15021,15020"

// podOptions are the per-pod settings: the mesh defaults overridden by the
// pod's annotations.
type podOptions struct {
	image           string
	native          bool
	mode            string
	hold            bool
	rewriteProbes   bool
	drain           time.Duration
	resources       corev1.ResourceRequirements
	includeCIDRs    string
	excludeCIDRs    string
	includeInbound  string
	excludeInbound  string
	includeOutbound string
	excludeOutbound string
	// metadata is ProxyConfig.proxyMetadata: environment variables of the
	// proxy container (EXIT_ON_ZERO_ACTIVE_CONNECTIONS, ...), as Istio's
	// injector sets them.
	metadata map[string]string
}

// proxyConfig is the part of Istio's ProxyConfig (proxy.istio.io/config)
// that the injector applies; other fields are accepted and ignored.
type proxyConfig struct {
	HoldApplicationUntilProxyStarts *bool             `json:"holdApplicationUntilProxyStarts"`
	TerminationDrainDuration        *string           `json:"terminationDrainDuration"`
	InterceptionMode                *string           `json:"interceptionMode"`
	ProxyMetadata                   map[string]string `json:"proxyMetadata"`
}

// options reads the pod's annotations over the mesh defaults. Every error
// names the annotation and the reason.
func (in *Injector) options(ann map[string]string) (podOptions, error) {
	o := podOptions{
		image:          in.cfg.Image,
		mode:           in.cfg.InterceptionMode,
		native:         in.cfg.NativeSidecar,
		hold:           in.cfg.HoldApplicationUntilProxyStarts,
		rewriteProbes:  !in.cfg.NoProbeRewrite,
		resources:      *in.cfg.Resources.DeepCopy(),
		includeCIDRs:   "*",
		includeInbound: "*",
	}
	modeFrom := "the mesh default interceptionMode" // where o.mode came from
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("annotation %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if v, ok := ann[annProxyImage]; ok {
		if strings.TrimSpace(v) == "" {
			bad(annProxyImage, "must not be empty")
		}
		o.image = v
	}
	boolAnn := func(key string, dst *bool) {
		if v, ok := ann[key]; ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(key, "want true or false, not %q", v)
				return
			}
			*dst = b
		}
	}
	boolAnn(annNativeSidecar, &o.native)
	boolAnn(annRewriteProbes, &o.rewriteProbes)

	if v, ok := ann[annProxyConfig]; ok {
		var pc proxyConfig
		if err := yaml.Unmarshal([]byte(v), &pc); err != nil {
			bad(annProxyConfig, "not a ProxyConfig: %v", err)
		} else {
			if pc.HoldApplicationUntilProxyStarts != nil {
				o.hold = *pc.HoldApplicationUntilProxyStarts
			}
			if m := pc.InterceptionMode; m != nil {
				switch *m {
				case ModeRedirect, ModeTProxy, ModeNone:
					o.mode, modeFrom = *m, annProxyConfig+" interceptionMode"
				default:
					bad(annProxyConfig, "interceptionMode %q: want %s, %s or %s", *m, ModeRedirect, ModeTProxy, ModeNone)
				}
			}
			if pc.TerminationDrainDuration != nil {
				d, err := time.ParseDuration(*pc.TerminationDrainDuration)
				if err != nil || d < 0 {
					bad(annProxyConfig, "terminationDrainDuration %q: want a non-negative duration such as 5s", *pc.TerminationDrainDuration)
				}
				o.drain = d
			}
			for k := range pc.ProxyMetadata {
				if err := metadataKey(k); err != nil {
					bad(annProxyConfig, "proxyMetadata %q: %v", k, err)
				}
			}
			o.metadata = pc.ProxyMetadata
		}
	}

	quantity := func(key string, list *corev1.ResourceList, name corev1.ResourceName) {
		v, ok := ann[key]
		if !ok {
			return
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			bad(key, "%q is not a quantity (such as 100m or 128Mi)", v)
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = q
	}
	quantity(annProxyCPU, &o.resources.Requests, corev1.ResourceCPU)
	quantity(annProxyMemory, &o.resources.Requests, corev1.ResourceMemory)
	quantity(annProxyCPULimit, &o.resources.Limits, corev1.ResourceCPU)
	quantity(annProxyMemoryLimit, &o.resources.Limits, corev1.ResourceMemory)
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, rok := o.resources.Requests[name]
		lim, lok := o.resources.Limits[name]
		if rok && lok && req.Cmp(lim) > 0 {
			bad("sidecar.istio.io/proxy"+resourceAnnotationName(name), "request %s is above the limit %s", req.String(), lim.String())
		}
	}

	cidrs := func(key string, dst *string, star bool) {
		v, ok := ann[key]
		if !ok {
			return
		}
		list, err := cidrList(v, star)
		if err != nil {
			bad(key, "%v", err)
			return
		}
		*dst = list
	}
	cidrs(annIncludeOutboundIPRanges, &o.includeCIDRs, true)
	cidrs(annExcludeOutboundIPRanges, &o.excludeCIDRs, false)

	ports := func(key string, dst *string, star bool) {
		v, ok := ann[key]
		if !ok {
			return
		}
		list, err := portList(v, star)
		if err != nil {
			bad(key, "%v", err)
			return
		}
		*dst = list
	}
	ports(annIncludeInboundPorts, &o.includeInbound, true)
	ports(annExcludeInboundPorts, &o.excludeInbound, false)
	ports(annIncludeOutboundPorts, &o.includeOutbound, false)
	ports(annExcludeOutboundPorts, &o.excludeOutbound, false)

	if v, ok := ann[annInterceptionMode]; ok {
		switch v {
		case ModeRedirect, ModeTProxy, ModeNone:
			o.mode, modeFrom = v, annInterceptionMode
		default:
			bad(annInterceptionMode, "want %s, %s or %s, not %q", ModeRedirect, ModeTProxy, ModeNone, v)
		}
	}
	// Without connection tracking, TPROXY capture tells a reply from an
	// uncaptured inbound port only by its source port: it captures every
	// inbound port, and excludeInboundPorts is the way to leave some out.
	if v, ok := ann[annIncludeInboundPorts]; ok && o.mode == ModeTProxy && o.includeInbound != "*" {
		bad(annIncludeInboundPorts, "%q conflicts with %s=%s: TPROXY mode captures every inbound port (\"*\") except those in %s",
			v, modeFrom, ModeTProxy, annExcludeInboundPorts)
	}
	return o, errors.Join(errs...)
}

func resourceAnnotationName(n corev1.ResourceName) string {
	if n == corev1.ResourceCPU {
		return "CPU"
	}
	return "Memory"
}

// cidrList checks a comma-separated CIDR list ("*" for all when star) and
// returns it normalised (trimmed, no empty items).
func cidrList(v string, star bool) (string, error) {
	v = strings.TrimSpace(v)
	if v == "*" {
		if !star {
			return "", errors.New(`"*" is not allowed here`)
		}
		return v, nil
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if _, err := netip.ParsePrefix(item); err != nil {
			return "", fmt.Errorf("%q is not a CIDR (such as 10.0.0.0/8)", item)
		}
		out = append(out, item)
	}
	return strings.Join(out, ","), nil
}

// portList checks a comma-separated port list ("*" for all when star).
func portList(v string, star bool) (string, error) {
	v = strings.TrimSpace(v)
	if v == "*" {
		if !star {
			return "", errors.New(`"*" is not allowed here`)
		}
		return v, nil
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := strconv.Atoi(item)
		if err != nil || p < 1 || p > 65535 {
			return "", fmt.Errorf("%q is not a port (1-65535)", item)
		}
		out = append(out, item)
	}
	return strings.Join(out, ","), nil
}

// metadataKey checks a proxyMetadata key: it becomes an environment
// variable of the proxy container, so it must be a variable name, and not
// one the injector sets itself.
func metadataKey(k string) error {
	if k == "" {
		return fmt.Errorf("empty name")
	}
	for i, c := range k {
		if c != '_' && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && !(i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("not an environment variable name (letters, digits and _, not starting with a digit)")
		}
	}
	if slices.Contains(injectedEnv[:], k) {
		return fmt.Errorf("set by the injector itself")
	}
	return nil
}
