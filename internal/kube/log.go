package kube

import (
	"log/slog"

	"k8s.io/klog/v2"
)

// RouteKlog sends client-go's logs (klog) to logger, tagged
// component=client-go, instead of klog's own stderr format. klog is
// process-wide, so cmd calls this once at start.
func RouteKlog(logger *slog.Logger) {
	klog.SetSlogLogger(logger.With("component", "client-go"))
}
