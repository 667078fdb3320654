package up

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// addAndRemove writes a WorkloadEntry details-v2 at address local into
// dir while r runs, checks that its sidecar (on served: local, or its
// namespace address with --netns) and workload start and serve
// productpage's calls over mTLS, then removes it and checks that both
// processes are gone.
func addAndRemove(t *testing.T, r *runningUp, dir, local, served string, c *http.Client) {
	t.Helper()
	before := r.PIDs()
	file := filepath.Join(dir, "details-v2.yaml")
	we := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details-v2
  namespace: default
  annotations:
    trellis.dev/run: "trellis bookinfo details --listen {{.AppAddress}}"
spec:
  address: %s
  labels:
    app: details
    version: v2
  serviceAccount: bookinfo-details
`, local)
	if err := os.WriteFile(file, []byte(we), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if !regexp.MustCompile(`workload details-v2\.default +ready`).MatchString(r.out.String()) {
			return fmt.Errorf("details-v2 not started yet; output:\n%s", r.out)
		}
		return nil
	})
	after := r.PIDs()
	if len(after) != len(before)+2 {
		t.Fatalf("%d processes after adding details-v2, want %d", len(after), len(before)+2)
	}
	added := after[len(before):]
	eventually(t, 20*time.Second, func() error {
		if _, _, err := page(c, r.IngressAddr(), ""); err != nil {
			return err
		}
		err := hasRequests(served, `reporter="destination"`, `connection_security_policy="mutual_tls"`,
			`source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage"`, `response_code="200"`)
		if err != nil {
			// What the new sidecar applied or rejected, for a failure.
			return fmt.Errorf("%w\nsidecar log (end):\n%s", err, tail(logPath(r.cfg.StateDir, "sidecar details-v2.default"), 30))
		}
		return nil
	})
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if !regexp.MustCompile(`workload details-v2\.default +stopped \(its WorkloadEntry was removed\)`).MatchString(r.out.String()) {
			return fmt.Errorf("details-v2 not stopped yet")
		}
		return nil
	})
	gone(t, added)
	// The page keeps working on details-v1 alone.
	eventually(t, 10*time.Second, func() error {
		for range 5 {
			if _, body, err := page(c, r.IngressAddr(), ""); err != nil || strings.Contains(body, "product details are currently unavailable") {
				return fmt.Errorf("page after removing details-v2: %v", err)
			}
		}
		return nil
	})
}
