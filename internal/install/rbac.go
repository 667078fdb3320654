package install

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellismesh/trellis/internal/kube/webhook"
)

var (
	read  = []string{"get", "list", "watch"}
	write = []string{"get", "list", "watch", "create", "update", "patch"}
)

// clusterRules are what the control plane does across the cluster, one
// rule per purpose.
func clusterRules(o Options) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		// Registry informers: services, pods (labels, service account,
		// IP), nodes (locality), namespaces (network label, root cert
		// publication).
		{APIGroups: []string{""}, Resources: []string{"services", "pods", "nodes", "namespaces"}, Verbs: read},
		// Registry informers: endpoints.
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		// CRD config source: every Istio kind, and status conditions on
		// them (written by the leader).
		{APIGroups: []string{"networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"}, Resources: []string{"*"}, Verbs: read},
		{APIGroups: []string{"networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"}, Resources: []string{"*/status"}, Verbs: []string{"get", "update", "patch"}},
		// CRD config source: the Gateway API kinds.
		{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"*"}, Verbs: read},
		{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"*/status"}, Verbs: []string{"get", "update", "patch"}},
		// CA: authenticating proxies by their service-account tokens.
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		// CA: the root certificate in ConfigMap istio-ca-root-cert of
		// every namespace.
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: write},
		// Webhooks: keeping the caBundle of Trellis's own two
		// configurations current (BundleSyncer: get, update).
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{webhook.MutatingNameFor(o.Revision)}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, ResourceNames: []string{webhook.ValidatingNameFor(o.Revision)}, Verbs: []string{"get", "update", "patch"}},
	}
}

// namespaceRules are what the control plane does in its own namespace.
func namespaceRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		// CA: its key and root in a Secret, a plugged-in cacerts Secret.
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: write},
		// Leader election.
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: write},
	}
}

// roleName names the ClusterRole and its binding: trellis-<ns> (or
// trellis-<rev>-<ns>), so installations in two namespaces, or two
// revisions, do not share one.
func roleName(o Options) string { return o.revisioned(Name) + "-" + o.Namespace }

func subjects(o Options) []rbacv1.Subject {
	return []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: o.revisioned(Name), Namespace: o.Namespace}}
}

func clusterRole(o Options) *rbacv1.ClusterRole {
	m := meta(o, roleName(o), false)
	return &rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}, ObjectMeta: m, Rules: clusterRules(o)}
}

func clusterRoleBinding(o Options) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: meta(o, roleName(o), false),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName(o)},
		Subjects:   subjects(o),
	}
}

func role(o Options) *rbacv1.Role {
	return &rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: meta(o, o.revisioned(Name), true), Rules: namespaceRules()}
}

func roleBinding(o Options) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(o, o.revisioned(Name), true),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: o.revisioned(Name)},
		Subjects:   subjects(o),
	}
}
