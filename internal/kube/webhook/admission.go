package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellismesh/trellis/internal/config/decode"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/validation"
	"github.com/trellismesh/trellis/internal/kube/inject"
)

// maxReviewBytes bounds an AdmissionReview body (the API server's own
// request limit is 3 MiB per object).
const maxReviewBytes = 6 << 20

// reviewFunc answers one admission request.
type reviewFunc func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse

// serveReview decodes an AdmissionReview v1, calls f and writes the
// response review with the request's UID.
func serveReview(log *slog.Logger, f reviewFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
			return
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			http.Error(w, fmt.Sprintf("content type %q: want application/json", ct), http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
		if err != nil {
			http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxReviewBytes {
			http.Error(w, fmt.Sprintf("request larger than %d bytes", maxReviewBytes), http.StatusRequestEntityTooLarge)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil {
			http.Error(w, "decoding the AdmissionReview: "+err.Error(), http.StatusBadRequest)
			return
		}
		if review.Request == nil {
			http.Error(w, "AdmissionReview has no request", http.StatusBadRequest)
			return
		}
		resp := f(review.Request)
		resp.UID = review.Request.UID
		out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
		if out.APIVersion == "" {
			out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
		}
		data, err := json.Marshal(out)
		if err != nil {
			log.Error("encoding the admission response", "err", err)
			http.Error(w, "encoding the response", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	})
}

func allowed() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

func denied(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: code, Message: msg,
		Reason: metav1.StatusReasonInvalid,
	}}
}

// injectPod is the /inject endpoint: Pod creations (the configuration's
// namespace and object selectors have decided the namespace asks for
// injection) get the sidecar as a JSON patch; pods that opt out, use the
// host network or already have a sidecar are allowed unchanged. A pod
// whose annotations are wrong is refused with the annotation named:
// silently starting it without its sidecar would bypass the mesh.
func injectPod(in *inject.Injector, log *slog.Logger) reviewFunc {
	return func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
			return allowed()
		}
		var pod corev1.Pod
		if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
			return denied(http.StatusBadRequest, "decoding the pod: "+err.Error())
		}
		if pod.Namespace == "" {
			pod.Namespace = req.Namespace
		}
		d := inject.Required(&pod, true)
		if !d.Inject {
			log.Debug("not injecting", "namespace", req.Namespace, "pod", podName(&pod), "reason", d.Reason)
			return allowed()
		}
		out, err := in.Pod(&pod, "")
		if err != nil {
			return denied(http.StatusUnprocessableEntity, fmt.Sprintf("sidecar injection into pod %s/%s: %v", req.Namespace, podName(&pod), err))
		}
		patch, err := inject.Patch(&pod, out)
		if err != nil {
			return denied(http.StatusInternalServerError, fmt.Sprintf("sidecar injection into pod %s/%s: %v", req.Namespace, podName(&pod), err))
		}
		log.Info("injected", "namespace", req.Namespace, "pod", podName(&pod), "reason", d.Reason)
		pt := admissionv1.PatchTypeJSONPatch
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
	}
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "<generated>"
}

// validateConfig is the /validate endpoint: the object is decoded and
// validated exactly as the file source does (config/decode, then
// config/validation), and refused with every field error, each as
// "<field>: <reason>". Warnings are returned as admission warnings.
// Deletions are always allowed.
func validateConfig(schemas schema.Set) reviewFunc {
	return func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect {
			return allowed()
		}
		raw := req.Object.Raw
		if len(raw) == 0 {
			return denied(http.StatusBadRequest, "the request carries no object")
		}
		id := req.Kind.Kind + " " + req.Namespace + "/" + req.Name
		res := decode.Decode(schemas, "admission", raw)
		if len(res.Errors) > 0 {
			msgs := make([]string, len(res.Errors))
			for i, e := range res.Errors {
				msgs[i] = fieldMessage(e.Field, e.Reason)
			}
			return denied(http.StatusUnprocessableEntity, "invalid "+id+": "+strings.Join(msgs, "; "))
		}
		if len(res.Configs) != 1 {
			// Not one of the Istio kinds this webhook validates (the
			// configuration's rules should not have sent it).
			return allowed()
		}
		warnings, err := validation.Validate(res.Configs[0])
		resp := allowed()
		resp.Warnings = warnings.Strings()
		if err != nil {
			var fes validation.Errors
			if !errors.As(err, &fes) {
				return denied(http.StatusInternalServerError, "validating "+id+": "+err.Error())
			}
			msgs := make([]string, len(fes))
			for i, fe := range fes {
				msgs[i] = fieldMessage(fe.Field, fe.Reason)
			}
			out := denied(http.StatusUnprocessableEntity, "invalid "+id+": "+strings.Join(msgs, "; "))
			out.Warnings = resp.Warnings
			return out
		}
		return resp
	}
}

func fieldMessage(field, reason string) string {
	if field == "" {
		return reason
	}
	return field + ": " + reason
}
