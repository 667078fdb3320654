package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/trellismesh/trellis/internal/freeport"
	"github.com/trellismesh/trellis/internal/kube"
)

// KubeVersion is the kube-apiserver version the harness runs: the
// k8s.io/kubernetes requirement of tools/kube-apiserver/go.mod (a test
// keeps the two equal).
const KubeVersion = "v1.31.4"

// ServiceCIDR is the cluster's service IP range.
const ServiceCIDR = "10.96.0.0/16"

// readyTimeout bounds the wait for /readyz: kube-apiserver's post-start
// hooks (RBAC bootstrap, priority levels) take a few seconds, more on a
// loaded machine.
const readyTimeout = 120 * time.Second

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	// Config authenticates as a cluster administrator (system:masters).
	Config *rest.Config
	// Client is a client bundle built from Config.
	Client *kube.Client
	// Kubeconfig is the path of a kubeconfig file for Config (for kubectl).
	Kubeconfig string

	pids []int // etcd and kube-apiserver, for tests of the cleanup
}

// Binaries returns the paths of kube-apiserver and etcd, or an error that
// says how to provide them.
func Binaries() (apiserver, etcd string, err error) {
	apiserver = os.Getenv("TRELLIS_KUBE_APISERVER")
	if apiserver == "" {
		cache := os.Getenv("TRELLIS_CACHE")
		if cache == "" {
			home, herr := os.UserHomeDir()
			if herr != nil {
				return "", "", fmt.Errorf("locating kube-apiserver: no $TRELLIS_CACHE and no home directory: %w", herr)
			}
			cache = filepath.Join(home, ".cache", "trellis")
		}
		apiserver = filepath.Join(cache, "kube-apiserver-"+KubeVersion)
	}
	var missing []string
	if st, serr := os.Stat(apiserver); serr != nil || st.IsDir() {
		missing = append(missing, fmt.Sprintf("kube-apiserver not found at %s: run scripts/kube-tools.sh (builds kube-apiserver %s into that path), or set TRELLIS_KUBE_APISERVER", apiserver, KubeVersion))
	}
	etcd = os.Getenv("TRELLIS_ETCD")
	if etcd == "" {
		if p, lerr := exec.LookPath("etcd"); lerr == nil {
			etcd = p
		}
	}
	if etcd == "" {
		missing = append(missing, "etcd not found on $PATH: apt-get install etcd-server (or set TRELLIS_ETCD)")
	} else if _, serr := os.Stat(etcd); serr != nil {
		missing = append(missing, fmt.Sprintf("etcd not found at %s: apt-get install etcd-server (or set TRELLIS_ETCD)", etcd))
	}
	if len(missing) > 0 {
		return "", "", errors.New(strings.Join(missing, "; "))
	}
	return apiserver, etcd, nil
}

// Start runs etcd and kube-apiserver for the rest of the test and returns
// once the API server is ready. Missing binaries fail the test.
func Start(t testing.TB) *Cluster { return start(t) }

func start(t TB) *Cluster {
	t.Helper()
	apiserverBin, etcdBin, err := Binaries()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	dir := t.TempDir()
	creds, err := writeCredentials(dir)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}

	ports, err := freePorts(3)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	etcdLog, etcdPID := startProcess(t, filepath.Join(dir, "etcd.log"), etcdBin,
		"--name=default",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--logger=zap",
		"--log-level=warn",
	)

	host := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	apiLog, apiPID := startProcess(t, filepath.Join(dir, "kube-apiserver.log"), apiserverBin,
		"--etcd-servers="+clientURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+creds.certFile,
		"--tls-private-key-file="+creds.keyFile,
		"--client-ca-file="+creds.caFile,
		"--token-auth-file="+creds.tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+creds.saKeyFile,
		"--service-account-signing-key-file="+creds.saKeyFile,
		"--service-cluster-ip-range="+ServiceCIDR,
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--profiling=false",
		// The advertise address is loopback, which the Endpoints of the
		// "kubernetes" Service may not hold: do not maintain them.
		"--endpoint-reconciler-type=none",
		"--v=0",
	)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: etcd log (tail):\n%s", tail(etcdLog, 30))
			t.Logf("kubetest: kube-apiserver log (tail):\n%s", tail(apiLog, 60))
		}
	})

	cfg := &rest.Config{
		Host:            host,
		BearerToken:     creds.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: creds.caPEM},
	}
	if err := waitReady(host, creds); err != nil {
		t.Fatalf("kubetest: kube-apiserver %s not ready: %v\nkube-apiserver log (tail):\n%s\netcd log (tail):\n%s",
			host, err, tail(apiLog, 40), tail(etcdLog, 20))
	}
	client, err := kube.New(cfg)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return &Cluster{Config: cfg, Client: client, Kubeconfig: kubeconfig, pids: []int{etcdPID, apiPID}}
}

// startProcess starts bin in its own process group, logging to logPath,
// and kills the group when the test ends. Pdeathsig kills it if the test
// binary dies first. It returns the log's path and the process id.
func startProcess(t TB, logPath, bin string, args ...string) (string, int) {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("kubetest: starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		logFile.Close()
	})
	return logPath, cmd.Process.Pid
}

// waitReady polls /readyz until it answers 200 or readyTimeout passes.
func waitReady(host string, creds *credentials) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(creds.caPEM)
	hc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/readyz", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+creds.adminToken)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v, last answer: %s", readyTimeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago,
// outside the ephemeral range so that no other bind to port 0 (parallel
// test packages) takes them before etcd and kube-apiserver bind them.
func freePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		p, err := freeport.Pick("127.0.0.1")
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports, int(p)) {
			ports = append(ports, int(p))
		}
	}
	return ports, nil
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin"}
	kc.CurrentContext = "kubetest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
