package cacert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultAudience is the audience Istio's proxies request for the token
// they present to the CA.
const DefaultAudience = "istio-ca"

// Reviewer checks service-account tokens with the TokenReview API. It
// implements ca/server.TokenReviewer.
type Reviewer struct {
	Client kubernetes.Interface
	// Audiences the token must be valid for (at least one); default
	// DefaultAudience.
	Audiences []string
}

const saPrefix = "system:serviceaccount:"

// Review returns the token's namespace and service account when the API
// server authenticates it for one of the audiences.
func (r Reviewer) Review(ctx context.Context, token string) (namespace, serviceAccount string, err error) {
	auds := r.Audiences
	if len(auds) == 0 {
		auds = []string{DefaultAudience}
	}
	res, err := r.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: auds},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", "", fmt.Errorf("token review: %w", err)
	}
	st := res.Status
	if !st.Authenticated {
		if st.Error != "" {
			return "", "", fmt.Errorf("token review: not authenticated: %s", st.Error)
		}
		return "", "", errors.New("token review: not authenticated")
	}
	// The API server answers with the audiences of the request the token
	// is valid for; an empty list would mean it ignored them.
	if !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(auds, a) }) {
		return "", "", fmt.Errorf("token review: token audiences %v do not include %v", st.Audiences, auds)
	}
	rest, ok := strings.CutPrefix(st.User.Username, saPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", fmt.Errorf("token review: %q is not a service account", st.User.Username)
	}
	return ns, sa, nil
}
