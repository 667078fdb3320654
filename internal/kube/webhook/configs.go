package webhook

import (
	"errors"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube/inject"
)

// Default names of the webhook configurations Trellis installs.
const (
	MutatingName   = "trellis-sidecar-injector"
	ValidatingName = "trellis-validator"
)

// MutatingNameFor and ValidatingNameFor name a revision's webhook
// configurations, as Istio's install does (istio-sidecar-injector-<rev>):
// the default revision keeps MutatingName and ValidatingName, any other
// revision gets its own, so that revisions installed side by side do not
// overwrite each other's configuration.
func MutatingNameFor(revision string) string { return revisionName(MutatingName, revision) }

// ValidatingNameFor: see MutatingNameFor.
func ValidatingNameFor(revision string) string { return revisionName(ValidatingName, revision) }

func revisionName(base, revision string) string {
	if revision == "" || revision == "default" {
		return base
	}
	return base + "-" + revision
}

// ServiceRef is the Service in front of the webhook server.
type ServiceRef struct {
	Namespace, Name string
	// Port is the Service port (default 443, forwarding to 15017).
	Port int32
}

// Target says how the API server reaches the webhook server and what it
// trusts: a Service, or (out-of-cluster, tests) a base URL such as
// https://127.0.0.1:15017. CABundle is Certs.CABundle().
type Target struct {
	Service  *ServiceRef
	URL      string
	CABundle []byte
	// Revision of the control plane (default "default").
	Revision string
}

func (t Target) clientConfig(path string) (admissionregistrationv1.WebhookClientConfig, error) {
	switch {
	case t.Service != nil && t.URL != "":
		return admissionregistrationv1.WebhookClientConfig{}, errors.New("webhook target: both a Service and a URL")
	case t.Service != nil:
		port := t.Service.Port
		if port == 0 {
			port = 443
		}
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: t.Service.Namespace, Name: t.Service.Name, Path: ptr.To(path), Port: ptr.To(port)},
			CABundle: t.CABundle,
		}, nil
	case t.URL != "":
		if !strings.HasPrefix(t.URL, "https://") {
			return admissionregistrationv1.WebhookClientConfig{}, errors.New("webhook target: the URL must be https")
		}
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(strings.TrimSuffix(t.URL, "/") + path), CABundle: t.CABundle}, nil
	}
	return admissionregistrationv1.WebhookClientConfig{}, errors.New("webhook target: no Service and no URL")
}

// notSystem keeps the API server from calling the webhook for the system
// namespaces at all.
var notSystem = metav1.LabelSelectorRequirement{
	Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn,
	Values: []string{"kube-system", "kube-public", "kube-node-lease"},
}

// MutatingConfig is the sidecar injector's MutatingWebhookConfiguration,
// with Istio's selectors (failure policy Fail):
//
//	namespace.sidecar-injector.istio.io      namespace istio-injection=enabled, pod not sidecar.istio.io/inject=false
//	object.sidecar-injector.istio.io         namespace without istio-injection nor istio.io/rev, pod sidecar.istio.io/inject=true
//	rev.namespace.sidecar-injector.istio.io  namespace istio.io/rev=<revision> without istio-injection, pod not ...=false
//
// (the first two only for the default revision), which is
// inject.NamespaceEnabled and the label half of inject.Required expressed
// as selectors.
func MutatingConfig(name string, t Target) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	cc, err := t.clientConfig(InjectPath)
	if err != nil {
		return nil, err
	}
	rev := t.Revision
	if rev == "" {
		rev = "default"
	}
	notOptedOut := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: inject.InjectKey, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}},
	}}
	optedIn := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: inject.InjectKey, Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}},
	}}
	hook := func(name string, ns, obj *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
		ns.MatchExpressions = append(ns.MatchExpressions, notSystem)
		return admissionregistrationv1.MutatingWebhook{
			Name:         name,
			ClientConfig: *cc.DeepCopy(),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
			TimeoutSeconds:          ptr.To[int32](10),
			NamespaceSelector:       ns,
			ObjectSelector:          obj,
		}
	}
	var hooks []admissionregistrationv1.MutatingWebhook
	if rev == "default" {
		hooks = append(hooks,
			hook("namespace.sidecar-injector.istio.io",
				&metav1.LabelSelector{MatchLabels: map[string]string{inject.NamespaceLabel: "enabled"}}, notOptedOut),
			hook("object.sidecar-injector.istio.io",
				&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: inject.NamespaceLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
					{Key: inject.RevisionLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
				}}, optedIn),
		)
	}
	hooks = append(hooks, hook("rev.namespace.sidecar-injector.istio.io",
		&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: inject.RevisionLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{rev}},
			{Key: inject.NamespaceLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
		}}, notOptedOut))
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "sidecar-injector", inject.RevisionLabel: rev}},
		Webhooks:   hooks,
	}, nil
}

// ValidatingConfig is the ValidatingWebhookConfiguration for every kind of
// schemas, at every version it is served at (failure policy Fail).
func ValidatingConfig(name string, t Target, schemas schema.Set) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	cc, err := t.clientConfig(ValidatePath)
	if err != nil {
		return nil, err
	}
	rev := t.Revision
	if rev == "" {
		rev = "default"
	}
	byGroup := map[string]*admissionregistrationv1.Rule{}
	var groups []string
	for _, sc := range schemas.All() {
		r := byGroup[sc.Group]
		if r == nil {
			r = &admissionregistrationv1.Rule{APIGroups: []string{sc.Group}, Scope: ptr.To(admissionregistrationv1.AllScopes)}
			byGroup[sc.Group] = r
			groups = append(groups, sc.Group)
		}
		for _, v := range sc.Versions {
			if !slices.Contains(r.APIVersions, v) {
				r.APIVersions = append(r.APIVersions, v)
			}
		}
		r.Resources = append(r.Resources, sc.Plural)
	}
	slices.Sort(groups)
	var rules []admissionregistrationv1.RuleWithOperations
	for _, g := range groups {
		r := byGroup[g]
		slices.Sort(r.APIVersions)
		slices.Sort(r.Resources)
		rules = append(rules, admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       *r,
		})
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "istiod", inject.RevisionLabel: rev}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validation.istio.io",
			ClientConfig:            cc,
			Rules:                   rules,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](10),
		}},
	}, nil
}
