package inject

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Injector adds the sidecar to pods. It holds only the immutable,
// defaulted Config and is safe for concurrent use.
type Injector struct {
	cfg Config
}

// New checks cfg, applies its defaults and returns an Injector.
func New(cfg Config) (*Injector, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Injector{cfg: c}, nil
}

// Config returns the defaulted configuration.
func (in *Injector) Config() Config { return in.cfg }

// status is the value of the sidecar.istio.io/status annotation.
type status struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

// Pod returns a copy of pod with the sidecar added. It does not decide
// whether the pod should have one (see Required), but a pod that already
// has one comes back unchanged, so that injecting twice is injecting once.
// workload names the pod's workload (Deployment, Job, ...) for telemetry;
// when empty it is derived from the pod's owner and name. Bad annotations
// are errors naming the annotation; pod is never modified.
func (in *Injector) Pod(pod *corev1.Pod, workload string) (*corev1.Pod, error) {
	out := pod.DeepCopy()
	if Injected(pod) {
		return out, nil
	}
	o, err := in.options(pod.Annotations)
	if err != nil {
		return nil, err
	}
	if workload == "" {
		workload = workloadName(pod)
	}
	var probers string
	if o.rewriteProbes {
		if probers, err = rewriteProbes(&out.Spec); err != nil {
			return nil, err
		}
	}

	// The labels the mesh reads: mutual TLS is possible with this pod, and
	// its canonical service. The proxy announces the final set.
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if _, ok := out.Labels["security.istio.io/tlsMode"]; !ok {
		out.Labels["security.istio.io/tlsMode"] = "istio"
	}
	if _, ok := out.Labels["service.istio.io/canonical-name"]; !ok && workload != "" {
		out.Labels["service.istio.io/canonical-name"] = canonicalName(pod.Labels, workload)
	}
	proxy := in.proxyContainer(out, o, workload, probers)
	// Interception mode NONE installs no capture, so no istio-init.
	var initCs []corev1.Container
	if o.mode != ModeNone {
		initCs = append(initCs, in.initContainer(o))
	}
	if o.native {
		// The proxy starts after the capture rules and before every other
		// init container, and stays up (restartPolicy Always): a native
		// sidecar. Its startup probe holds the application back until it is
		// ready, which is what holdApplicationUntilProxyStarts asks for.
		proxy.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		proxy.StartupProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(StatusPort)}},
			TimeoutSeconds:   3,
			PeriodSeconds:    1,
			FailureThreshold: 600,
		}
		out.Spec.InitContainers = slices.Concat(initCs, []corev1.Container{proxy}, out.Spec.InitContainers)
	} else {
		out.Spec.InitContainers = slices.Concat(initCs, out.Spec.InitContainers)
		if o.hold {
			// Containers start in order, and the kubelet runs a postStart
			// hook to completion before starting the next container.
			proxy.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
				Exec: &corev1.ExecAction{Command: []string{in.cfg.Binary, "proxy", "wait"}},
			}}
			out.Spec.Containers = append([]corev1.Container{proxy}, out.Spec.Containers...)
		} else {
			out.Spec.Containers = append(out.Spec.Containers, proxy)
		}
	}
	out.Spec.Volumes = append(out.Spec.Volumes, in.volumes()...)

	st := status{
		Containers: []string{ProxyContainer},
		Revision:   in.cfg.Revision,
	}
	for _, c := range initCs {
		st.InitContainers = append(st.InitContainers, c.Name)
	}
	for _, v := range in.volumes() {
		st.Volumes = append(st.Volumes, v.Name)
	}
	if o.native {
		st.InitContainers = append(st.InitContainers, ProxyContainer)
		st.Containers = nil
	}
	stJSON, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", StatusAnnotation, err)
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[StatusAnnotation] = string(stJSON)
	// Istio's metrics merging: scrape the proxy's merged endpoint.
	if _, ok := out.Annotations["prometheus.io/scrape"]; !ok {
		out.Annotations["prometheus.io/scrape"] = "true"
		out.Annotations["prometheus.io/port"] = strconv.Itoa(MetricsPort)
		out.Annotations["prometheus.io/path"] = "/stats/prometheus"
	}
	return out, nil
}

// initContainer runs the capture set-up in o.mode (REDIRECT or TPROXY)
// with only the capabilities it needs, as root (iptables needs it), with
// nothing else allowed.
func (in *Injector) initContainer(o podOptions) corev1.Container {
	excludeInbound := alwaysExcludedInboundPorts
	if o.excludeInbound != "" {
		excludeInbound += "," + o.excludeInbound
	}
	args := []string{"proxy", "iptables",
		"-p", "15001", "-z", "15006",
		"-u", strconv.Itoa(ProxyUID),
	}
	if o.mode == ModeTProxy {
		// The TPROXY proxy runs as root (see proxySecurity): only its
		// group tells its traffic apart, so name the group explicitly.
		args = append(args, "-g", strconv.Itoa(ProxyGID))
	}
	args = append(args, "-m", o.mode,
		"-i", o.includeCIDRs, "-x", o.excludeCIDRs,
		"-b", o.includeInbound, "-d", excludeInbound,
	)
	if o.includeOutbound != "" {
		args = append(args, "-q", o.includeOutbound)
	}
	if o.excludeOutbound != "" {
		args = append(args, "-o", o.excludeOutbound)
	}
	return corev1.Container{
		Name:            InitContainer,
		Image:           o.image,
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Command:         []string{in.cfg.Binary},
		Args:            args,
		Resources:       *o.resources.DeepCopy(),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Privileged:               ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(false),
			RunAsUser:                ptr.To[int64](0),
			RunAsGroup:               ptr.To[int64](0),
			RunAsNonRoot:             ptr.To(false),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
	}
}

// proxyContainer runs `trellis proxy sidecar`. The pod's identity comes
// from the downward API (the sidecar reads INSTANCE_IP, POD_NAME,
// POD_NAMESPACE and SERVICE_ACCOUNT); its labels are those of the pod at
// admission.
//
// Its environment is injectedEnv, then the pod's proxyMetadata.
func (in *Injector) proxyContainer(pod *corev1.Pod, o podOptions, workload, probers string) corev1.Container {
	args := []string{"proxy", "sidecar",
		"--xds-address=" + in.cfg.XDSAddress,
		"--domain=" + in.cfg.ClusterDomain,
		"--trust-domain=" + in.cfg.TrustDomain,
	}
	if in.cfg.CAAddress != "" {
		args = append(args,
			"--ca-address="+in.cfg.CAAddress,
			"--ca-root-cert="+rootFile,
			"--bootstrap-token="+tokenFile,
		)
	}
	if l := labelsArg(pod.Labels); l != "" {
		args = append(args, "--labels="+l)
	}
	if workload != "" {
		args = append(args, "--workload-name="+workload)
	}
	if o.drain > 0 {
		args = append(args, "--drain-duration="+o.drain.String())
	}
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	env := []corev1.EnvVar{
		field("POD_NAME", "metadata.name"), // injectedEnv lists these names
		field("POD_NAMESPACE", "metadata.namespace"),
		field("INSTANCE_IP", "status.podIP"),
		field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		{Name: InterceptionEnv, Value: o.mode},
	}
	if probers != "" {
		env = append(env, corev1.EnvVar{Name: ProbersEnv, Value: probers})
	}
	for _, k := range slices.Sorted(maps.Keys(o.metadata)) {
		env = append(env, corev1.EnvVar{Name: k, Value: o.metadata[k]})
	}
	mounts := []corev1.VolumeMount{{Name: envoyVolume, MountPath: envoyPath}}
	if in.cfg.CAAddress != "" {
		mounts = append(mounts,
			corev1.VolumeMount{Name: tokenVolume, MountPath: tokenPath, ReadOnly: true},
			corev1.VolumeMount{Name: rootVolume, MountPath: rootPath, ReadOnly: true},
		)
	}
	return corev1.Container{
		Name:            ProxyContainer,
		Image:           o.image,
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Command:         []string{in.cfg.Binary},
		Args:            args,
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: "http-metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
			{Name: "status-port", ContainerPort: StatusPort, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(StatusPort)}},
			InitialDelaySeconds: 0,
			TimeoutSeconds:      3,
			PeriodSeconds:       2,
			FailureThreshold:    4,
		},
		Resources:       *o.resources.DeepCopy(),
		VolumeMounts:    mounts,
		SecurityContext: proxySecurity(o.mode),
	}
}

// proxySecurity is the proxy's security context: user and group 1337,
// read-only root, every capability dropped. In TPROXY mode the proxy opens
// transparent (IP_TRANSPARENT) sockets, which needs CAP_NET_ADMIN; as in
// Istio it then runs as root in group 1337, because Kubernetes puts added
// capabilities in no ambient set, so a non-root process loses them when
// the container's command is executed (kubernetes/kubernetes#56374). Its
// traffic bypasses the capture by its group (iptables -g 1337).
func proxySecurity(mode string) *corev1.SecurityContext {
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Privileged:               ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsUser:                ptr.To[int64](ProxyUID),
		RunAsGroup:               ptr.To[int64](ProxyGID),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	if mode == ModeTProxy {
		sc.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		sc.RunAsUser = ptr.To[int64](0)
		sc.RunAsNonRoot = ptr.To(false)
	}
	return sc
}

// volumes are the proxy's scratch space and, with a CA, its
// service-account token for the CA (audience istio-ca) and the mesh root
// certificate.
func (in *Injector) volumes() []corev1.Volume {
	envoy := corev1.Volume{Name: envoyVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}
	if in.cfg.CAAddress == "" {
		return []corev1.Volume{envoy}
	}
	return []corev1.Volume{
		envoy,
		{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: tokenAudience, ExpirationSeconds: ptr.To[int64](43200), Path: "istio-token",
			}}},
		}}},
		{Name: rootVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootConfigMap},
		}}},
	}
}

// labelsArg formats labels as the sidecar's --labels flag: k=v pairs,
// sorted. Label values never hold commas or "=", so the list is unambiguous.
func labelsArg(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// workloadName derives the pod's workload from its controller, as Istio
// does: a ReplicaSet's pods belong to the Deployment (the ReplicaSet name
// without its pod-template-hash suffix); a Job's to its CronJob when the
// name looks generated; any other controller names itself; a bare pod is
// its own workload (its generateName prefix, or its name).
func workloadName(pod *corev1.Pod) string {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
				return strings.TrimSuffix(ref.Name, "-"+h)
			}
		case "Job":
			// CronJob-created jobs are named <cronjob>-<minutes since epoch>.
			if i := strings.LastIndexByte(ref.Name, '-'); i > 0 {
				if _, err := strconv.ParseUint(ref.Name[i+1:], 10, 64); err == nil && len(ref.Name)-i-1 >= 8 {
					return ref.Name[:i]
				}
			}
		}
		return ref.Name
	}
	if pod.Name != "" {
		return pod.Name
	}
	return strings.TrimSuffix(pod.GenerateName, "-")
}

// canonicalName is Istio's canonical service name: the
// service.istio.io/canonical-name, app.kubernetes.io/name or app label,
// else the workload name.
func canonicalName(labels map[string]string, workload string) string {
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return workload
}

// injectedEnv are the proxy container's environment variables the
// injector sets; proxyMetadata may not set them.
var injectedEnv = [...]string{"POD_NAME", "POD_NAMESPACE", "INSTANCE_IP", "SERVICE_ACCOUNT", InterceptionEnv, ProbersEnv}
