// Command kubescale measures the control plane on a large cluster: it
// starts a real etcd and kube-apiserver (internal/kube/kubetest), fills
// them with Services, EndpointSlices and Pods (status set, as a kubelet
// would), then starts the control plane (discovery.New with the cluster)
// and records the time to its first full sync (Server.Ready: informers
// synced and the first snapshot published) and its memory afterwards.
//
//	go run ./bench/kubescale -services 1000 -pods 5000
//
// It is a benchmark, not a test; results go to docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/trellismesh/trellis/internal/discovery"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
)

func main() {
	services := flag.Int("services", 1000, "Services (each with one EndpointSlice)")
	pods := flag.Int("pods", 5000, "Pods, spread evenly over the Services")
	namespaces := flag.Int("namespaces", 50, "namespaces the Services are spread over")
	workers := flag.Int("workers", 32, "concurrent writers while filling the API server")
	flag.Parse()
	if err := run(*services, *pods, *namespaces, *workers); err != nil {
		log.Fatal(err)
	}
}

func run(nSvc, nPod, nNS, workers int) error {
	if nSvc < 1 || nNS < 1 || nPod < nSvc {
		return fmt.Errorf("need at least one Service, one namespace and a Pod per Service")
	}
	dir, err := os.MkdirTemp("", "kubescale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cluster, stop, err := kubetest.Standalone(dir, true, log.Printf)
	if err != nil {
		return err
	}
	defer stop()

	// The filler gets its own client with high limits; the control plane
	// uses the defaults, as in production.
	cfg := *cluster.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	filler, err := kube.New(&cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	t0 := time.Now()
	if err := fill(ctx, filler, nSvc, nPod, nNS, workers); err != nil {
		return err
	}
	log.Printf("filled %d Services, %d EndpointSlices, %d Pods in %d namespaces in %v", nSvc, nSvc, nPod, nNS, time.Since(t0).Round(time.Millisecond))

	before := heap()
	cp, err := kube.New(cluster.Config)
	if err != nil {
		return err
	}
	srv, err := discovery.New(discovery.Config{
		Kube:              cp,
		XDSAddress:        "127.0.0.1:0",
		MonitoringAddress: "-",
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- srv.Run(runCtx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		return fmt.Errorf("control plane stopped before ready: %w", err)
	case <-time.After(5 * time.Minute):
		cancel()
		return fmt.Errorf("control plane not ready after 5m")
	}
	sync := time.Since(start)
	snap := srv.Snapshot()
	after := heap()
	rss := rssKiB()
	cancel()
	<-done

	fmt.Printf("services=%d pods=%d namespaces=%d\n", nSvc, nPod, nNS)
	fmt.Printf("time to first full sync (Run → Ready): %v\n", sync.Round(time.Millisecond))
	fmt.Printf("snapshot: %d services\n", len(snap.Services()))
	fmt.Printf("heap in use after sync (after GC): %.1f MiB (%.1f MiB before the control plane started)\n", mib(after), mib(before))
	fmt.Printf("control plane heap (difference): %.1f MiB\n", mib(after-before))
	fmt.Printf("process RSS after sync: %.1f MiB (includes the filler's client)\n", float64(rss)/1024)
	fmt.Printf("go %s, %s/%s, %d CPUs\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	return nil
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func rssKiB() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}

// fill creates the namespaces, then per Service: the Service, its Pods
// (with status: IP, Running, Ready) and an EndpointSlice listing them.
func fill(ctx context.Context, c *kube.Client, nSvc, nPod, nNS, workers int) error {
	for i := range nNS {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%d", i)}}
		if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
		}
	}
	jobs := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				per := nPod / nSvc
				if i < nPod%nSvc {
					per++
				}
				if err := fillService(ctx, c, i, per, nNS); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var ferr error
	for i := 0; i < nSvc && ferr == nil; i++ {
		select {
		case jobs <- i:
		case ferr = <-errs:
		}
	}
	close(jobs)
	wg.Wait()
	if ferr != nil {
		return ferr
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func fillService(ctx context.Context, c *kube.Client, i, pods, nNS int) error {
	ns := fmt.Sprintf("ns-%d", i%nNS)
	name := fmt.Sprintf("svc-%d", i)
	labels := map[string]string{"app": name}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
				{Name: "grpc", Port: 9090, TargetPort: intstr.FromInt32(9090)},
			},
		},
	}
	if _, err := c.Kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Service %s/%s: %w", ns, name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-1", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: name},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("grpc"), Port: ptr.To[int32](9090), Protocol: ptr.To(corev1.ProtocolTCP)},
		},
	}
	for j := range pods {
		podName := fmt.Sprintf("%s-%d", name, j)
		n := i*16 + j // unique per pod while pods per service <= 16
		ip := fmt.Sprintf("10.%d.%d.%d", 1+n>>16, (n>>8)&0xff, n&0xff)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: ns, Labels: labels},
			Spec: corev1.PodSpec{
				ServiceAccountName: name,
				NodeName:           fmt.Sprintf("node-%d", n%100),
				Containers:         []corev1.Container{{Name: "app", Image: "app:1"}},
			},
		}
		created, err := c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating Pod %s/%s: %w", ns, podName, err)
		}
		created.Status = corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		}
		if _, err := c.Kube.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("setting status of Pod %s/%s: %w", ns, podName, err)
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			NodeName:   ptr.To(pod.Spec.NodeName),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: podName},
		})
	}
	if _, err := c.Kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating EndpointSlice %s/%s: %w", ns, slice.Name, err)
	}
	return nil
}
