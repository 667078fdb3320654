package inject

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// maxManifestBytes bounds what Manifest reads.
const maxManifestBytes = 64 << 20

// Manifest injects every Pod and pod template of a YAML stream (one or
// more documents): Pods, Deployments, StatefulSets, DaemonSets,
// ReplicaSets, Jobs and CronJobs (apps/v1, batch/v1, v1). Other documents
// are copied unchanged; so are pods that opt out (sidecar.istio.io/inject:
// "false" on the template), use the host network or already have a
// sidecar. As with istioctl kube-inject, the namespace's labels are not
// consulted: asking for injection is the point of the command. Errors
// name the document, the object and the problem.
func (in *Injector) Manifest(r io.Reader) ([]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(io.LimitReader(r, maxManifestBytes+1)))
	var out bytes.Buffer
	read := 0
	for doc := 1; ; doc++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if read += len(data); read > maxManifestBytes {
			return nil, fmt.Errorf("input larger than %d bytes", maxManifestBytes)
		}
		if len(bytes.TrimSpace(stripComments(data))) == 0 {
			doc--
			continue
		}
		res, err := in.document(data)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(res)
		if !bytes.HasSuffix(res, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

// stripComments drops whole-line comments, to tell an empty document.
func stripComments(data []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// document injects one document, or returns it as it was.
func (in *Injector) document(data []byte) ([]byte, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Pod":
		var p corev1.Pod
		return in.object(data, &p, func() error {
			d := Required(&p, true)
			if !d.Inject {
				return nil
			}
			out, err := in.Pod(&p, "")
			if err != nil {
				return err
			}
			p = *out
			return nil
		}, &p.ObjectMeta, tm.Kind)
	case "apps/v1/Deployment":
		var o appsv1.Deployment
		return in.object(data, &o, func() error { return in.template(&o.Spec.Template, o.Namespace, o.Name) }, &o.ObjectMeta, tm.Kind)
	case "apps/v1/StatefulSet":
		var o appsv1.StatefulSet
		return in.object(data, &o, func() error { return in.template(&o.Spec.Template, o.Namespace, o.Name) }, &o.ObjectMeta, tm.Kind)
	case "apps/v1/DaemonSet":
		var o appsv1.DaemonSet
		return in.object(data, &o, func() error { return in.template(&o.Spec.Template, o.Namespace, o.Name) }, &o.ObjectMeta, tm.Kind)
	case "apps/v1/ReplicaSet":
		var o appsv1.ReplicaSet
		return in.object(data, &o, func() error { return in.template(&o.Spec.Template, o.Namespace, o.Name) }, &o.ObjectMeta, tm.Kind)
	case "batch/v1/Job":
		var o batchv1.Job
		return in.object(data, &o, func() error { return in.template(&o.Spec.Template, o.Namespace, o.Name) }, &o.ObjectMeta, tm.Kind)
	case "batch/v1/CronJob":
		var o batchv1.CronJob
		return in.object(data, &o, func() error { return in.template(&o.Spec.JobTemplate.Spec.Template, o.Namespace, o.Name) }, &o.ObjectMeta, tm.Kind)
	}
	return data, nil
}

// object decodes data strictly into obj, runs mutate and encodes obj.
func (in *Injector) object(data []byte, obj any, mutate func() error, meta *metav1.ObjectMeta, kind string) ([]byte, error) {
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if err := mutate(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, meta.Name, err)
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("%s %s: encoding: %w", kind, meta.Name, err)
	}
	return out, nil
}

// template injects a workload's pod template, the workload naming it.
func (in *Injector) template(t *corev1.PodTemplateSpec, namespace, workload string) error {
	p := &corev1.Pod{ObjectMeta: t.ObjectMeta, Spec: t.Spec}
	if p.Namespace == "" {
		p.Namespace = namespace
	}
	if !Required(p, true).Inject {
		return nil
	}
	out, err := in.Pod(p, workload)
	if err != nil {
		return err
	}
	out.Namespace = t.Namespace
	t.ObjectMeta, t.Spec = out.ObjectMeta, out.Spec
	return nil
}
