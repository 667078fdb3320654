package install

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	configschema "github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube/inject"
	"github.com/trellismesh/trellis/internal/kube/leader"
	"github.com/trellismesh/trellis/internal/kube/webhook"
)

// Object is one manifest: the object and the API resource it is written to.
type Object struct {
	Resource   schema.GroupVersionResource
	Namespaced bool
	Object     *unstructured.Unstructured
}

// String is "<Kind> [<namespace>/]<name>", for messages.
func (o Object) String() string {
	if o.Namespaced {
		return fmt.Sprintf("%s %s/%s", o.Object.GetKind(), o.Object.GetNamespace(), o.Object.GetName())
	}
	return fmt.Sprintf("%s %s", o.Object.GetKind(), o.Object.GetName())
}

// caDir is where the control plane keeps its CA (an emptyDir: the root is
// regenerated when the Pod is replaced, until the CA keeps it in a Secret).
const caDir = "/var/lib/trellis/ca"

// Objects returns every object of an installation, in the order they are
// applied: CRDs, then the namespace, RBAC, Services, the Deployment and the
// webhook configurations. It is pure: the same options give the same
// objects.
func Objects(o Options) ([]Object, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	out := append([]Object(nil), crds...)
	typed := []struct {
		res        schema.GroupVersionResource
		namespaced bool
		obj        runtime.Object
	}{
		{gvr("", "v1", "namespaces"), false, namespace(o)},
		{gvr("", "v1", "serviceaccounts"), true, serviceAccount(o)},
		{gvr("rbac.authorization.k8s.io", "v1", "clusterroles"), false, clusterRole(o)},
		{gvr("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), false, clusterRoleBinding(o)},
		{gvr("rbac.authorization.k8s.io", "v1", "roles"), true, role(o)},
		{gvr("rbac.authorization.k8s.io", "v1", "rolebindings"), true, roleBinding(o)},
		{gvr("", "v1", "services"), true, service(o)},
		{gvr("apps", "v1", "deployments"), true, deployment(o)},
	}
	target := webhook.Target{
		Service:  &webhook.ServiceRef{Namespace: o.Namespace, Name: o.revisioned(ServiceName), Port: 443},
		Revision: o.Revision,
	}
	mut, err := webhook.MutatingConfig(webhook.MutatingNameFor(o.Revision), target)
	if err != nil {
		return nil, fmt.Errorf("mutating webhook configuration: %w", err)
	}
	val, err := webhook.ValidatingConfig(webhook.ValidatingNameFor(o.Revision), target, configschema.Istio())
	if err != nil {
		return nil, fmt.Errorf("validating webhook configuration: %w", err)
	}
	for _, w := range mut.Webhooks {
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
			return nil, fmt.Errorf("mutating webhook %s: failure policy is not Fail", w.Name)
		}
	}
	typed = append(typed,
		struct {
			res        schema.GroupVersionResource
			namespaced bool
			obj        runtime.Object
		}{gvr("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"), false, mut},
		struct {
			res        schema.GroupVersionResource
			namespaced bool
			obj        runtime.Object
		}{gvr("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"), false, val},
	)
	for _, t := range typed {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(t.obj)
		if err != nil {
			return nil, fmt.Errorf("converting %T: %w", t.obj, err)
		}
		delete(m, "status")
		dropNil(m)
		out = append(out, Object{Resource: t.res, Namespaced: t.namespaced, Object: &unstructured.Unstructured{Object: m}})
	}
	return out, nil
}

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

// dropNil removes null values (creationTimestamp and the like), so the
// manifests hold only what is set. Empty maps stay: emptyDir: {} means
// something.
func dropNil(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNil(v)
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					dropNil(em)
				}
			}
		}
	}
}

func labels(o Options) map[string]string {
	return map[string]string{
		"app":                         Name,
		"app.kubernetes.io/name":      Name,
		"app.kubernetes.io/component": "control-plane",
		"app.kubernetes.io/part-of":   Name,
		"istio":                       "pilot", // what Istio's tools select istiod by
		inject.RevisionLabel:          o.Revision,
	}
}

func meta(o Options, name string, namespaced bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Labels: labels(o)}
	if namespaced {
		m.Namespace = o.Namespace
	}
	return m
}

func namespace(o Options) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Namespace},
	}
}

func serviceAccount(o Options) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: meta(o, o.revisioned(Name), true),
	}
}

// selector picks the Deployment's Pods; it never changes (a Deployment's
// selector is immutable).
func selector(o Options) map[string]string {
	return map[string]string{"app": Name, inject.RevisionLabel: o.Revision}
}

func service(o Options) *corev1.Service {
	port := func(name string, port, target int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(target)}
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(o, o.revisioned(ServiceName), true),
		Spec: corev1.ServiceSpec{
			Selector: selector(o),
			// Istio's port names, so tools that look ports up by name work.
			Ports: []corev1.ServicePort{
				port("grpc-xds", PortXDS, PortXDS),
				port("https-dns", PortSecure, PortSecure),
				port("https-webhook", 443, PortWebhook),
				port("http-monitoring", PortMonitoring, PortMonitoring),
			},
		},
	}
}

// Args are the `trellis discovery` arguments the Deployment of o runs. The
// cluster is the Pod's own (no --kubeconfig: in a Pod the service account
// is used), the namespace comes from POD_NAMESPACE. A revision other than
// the default also names its own Service, webhook configurations and
// leader Lease, and injects pods with its own Service as their control
// plane.
func Args(o Options) []string {
	args := []string{
		"discovery",
		fmt.Sprintf("--xds-address=:%d", PortXDS),
		fmt.Sprintf("--secure-grpc-address=:%d", PortSecure),
		fmt.Sprintf("--monitoring-address=:%d", PortMonitoring),
		// Injection and validation webhooks (the Service's port 443);
		// the leader keeps their caBundle current.
		fmt.Sprintf("--webhook-address=:%d", PortWebhook),
		"--ca-dir=" + caDir,
	}
	if o.Revision == DefaultRevision {
		return args
	}
	svc := o.revisioned(ServiceName)
	control := fmt.Sprintf("%s.%s.svc:%d", svc, o.Namespace, PortSecure)
	return append(args,
		"--revision="+o.Revision,
		"--webhook-service="+svc,
		"--webhook-mutating-config="+webhook.MutatingNameFor(o.Revision),
		"--webhook-validating-config="+webhook.ValidatingNameFor(o.Revision),
		"--leader-lease="+o.revisioned(leader.DefaultLease),
		"--injected-xds-address="+control,
		"--injected-ca-address="+control,
	)
}

func deployment(o Options) *appsv1.Deployment {
	podLabels := labels(o)
	port := func(name string, p int32) corev1.ContainerPort {
		return corev1.ContainerPort{Name: name, ContainerPort: p, Protocol: corev1.ProtocolTCP}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(o, o.revisioned(Name), true),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(o.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector(o)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromString("100%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					// The control plane itself is not in the mesh.
					Annotations: map[string]string{inject.InjectKey: "false"},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: o.revisioned(Name),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](65532),
						RunAsGroup:     ptr.To[int64](65532),
						FSGroup:        ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "discovery",
						Image:           o.Image,
						ImagePullPolicy: o.ImagePullPolicy,
						Args:            Args(o),
						Env: []corev1.EnvVar{
							{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						},
						Ports: []corev1.ContainerPort{
							port("grpc-xds", PortXDS),
							port("https-dns", PortSecure),
							port("http-monitoring", PortMonitoring),
							port("https-webhook", PortWebhook),
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/ready", Port: intstr.FromInt32(PortMonitoring),
							}},
							PeriodSeconds:    3,
							TimeoutSeconds:   5,
							FailureThreshold: 3,
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("500m"),
								corev1.ResourceMemory: resource.MustParse("512Mi"),
							},
							Limits: corev1.ResourceList{
								corev1.ResourceMemory: resource.MustParse("2Gi"),
							},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "ca", MountPath: caDir}},
					}},
					Volumes: []corev1.Volume{{
						Name:         "ca",
						VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
					}},
				},
			},
		},
	}
}
