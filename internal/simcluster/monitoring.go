package simcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
)

// PromBinDir returns the directory with prometheus and alertmanager: $DRYDOCK_PROM_BIN when set,
// otherwise hack/prom-bin.sh builds them the first time.
func PromBinDir() (string, error) { return promBins.dir() }

var promBins = &builtBins{env: "DRYDOCK_PROM_BIN", script: "prom-bin.sh", marker: "alertmanager", make: "hack/prom-bin.sh"}

// Monitoring is a real Prometheus server and a real Alertmanager, run as local processes next to a
// simulated cluster: Prometheus scrapes the cluster's apiserver and the targets given, evaluates
// the rules given and sends their alerts to the Alertmanager.
type Monitoring struct {
	PrometheusURL   string
	AlertmanagerURL string

	dir     string
	procs   []*exec.Cmd
	log     io.Writer
	ownLog  io.Closer // the log file StartMonitoring made, closed by Stop
	stopped sync.Once
}

// MonitoringOptions configure StartMonitoring.
type MonitoringOptions struct {
	// Targets are host:port addresses serving /metrics over HTTP, scraped as job "test".
	Targets []string
	// Rules is a Prometheus rule file (groups: ...), evaluated every EvaluationInterval.
	Rules string
	// ScrapeInterval of the test targets and EvaluationInterval of the rules (default 1s each: tests
	// see a change within seconds). The apiserver is scraped every 5s.
	ScrapeInterval, EvaluationInterval time.Duration
	// Log receives both processes' output (default: a file in their work directory).
	Log io.Writer
}

// StartMonitoring starts the Alertmanager, then Prometheus, and returns once both are ready.
func (c *Cluster) StartMonitoring(ctx context.Context, opts MonitoringOptions) (m *Monitoring, err error) {
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.EvaluationInterval == 0 {
		opts.EvaluationInterval = time.Second
	}
	bin, err := PromBinDir()
	if err != nil {
		return nil, err
	}
	m = &Monitoring{log: opts.Log}
	defer func() {
		if err != nil {
			m.Stop()
		}
	}()
	if m.dir, m.log, m.ownLog, err = workDir("drydock-monitoring-", "monitoring.log", opts.Log); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	m.AlertmanagerURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	m.PrometheusURL = fmt.Sprintf("http://127.0.0.1:%d", ports[2])

	amConfig := filepath.Join(m.dir, "alertmanager.yml")
	// Alerts reach the API at once (no grouping wait); the receiver sends nowhere.
	if err := os.WriteFile(amConfig, []byte("route:\n  receiver: none\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n- name: none\n"), 0o644); err != nil {
		return nil, err
	}
	if err := m.start(filepath.Join(bin, "alertmanager"), "--config.file="+amConfig, "--storage.path="+filepath.Join(m.dir, "am-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]), fmt.Sprintf("--cluster.listen-address=127.0.0.1:%d", ports[1])); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, m.AlertmanagerURL+"/-/ready"); err != nil {
		return nil, fmt.Errorf("simcluster: alertmanager: %w (its log: %s)", err, filepath.Join(m.dir, "monitoring.log"))
	}

	// The apiserver, with the cluster's admin credentials from its kubeconfig.
	kc, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cur := kc.Contexts[kc.CurrentContext]
	cl, user := kc.Clusters[cur.Cluster], kc.AuthInfos[cur.AuthInfo]
	apiserver := strings.TrimPrefix(cl.Server, "https://")
	rules := filepath.Join(m.dir, "rules.yml")
	if opts.Rules == "" {
		opts.Rules = "groups: []\n"
	}
	if err := os.WriteFile(rules, []byte(opts.Rules), 0o644); err != nil {
		return nil, err
	}
	targets := "[]"
	if len(opts.Targets) > 0 {
		targets = `["` + strings.Join(opts.Targets, `", "`) + `"]`
	}
	promConfig := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
rule_files: [%q]
alerting:
  alertmanagers:
  - static_configs:
    - targets: ["127.0.0.1:%d"]
scrape_configs:
- job_name: apiserver
  scrape_interval: 5s
  scheme: https
  tls_config: {ca_file: %q, cert_file: %q, key_file: %q}
  static_configs:
  - targets: [%q]
- job_name: test
  static_configs:
  - targets: %s
`, opts.ScrapeInterval, opts.EvaluationInterval, rules, ports[0], cl.CertificateAuthority, user.ClientCertificate, user.ClientKey, apiserver, targets)
	promFile := filepath.Join(m.dir, "prometheus.yml")
	if err := os.WriteFile(promFile, []byte(promConfig), 0o644); err != nil {
		return nil, err
	}
	if err := m.start(filepath.Join(bin, "prometheus"), "--config.file="+promFile, "--storage.tsdb.path="+filepath.Join(m.dir, "prom-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[2])); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, m.PrometheusURL+"/-/ready"); err != nil {
		return nil, fmt.Errorf("simcluster: prometheus: %w (its log: %s)", err, filepath.Join(m.dir, "monitoring.log"))
	}
	return m, nil
}

// start runs a process in its own process group; Stop stops the group.
func (m *Monitoring) start(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = m.dir, m.log, m.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("simcluster: start %s: %w", filepath.Base(name), err)
	}
	m.procs = append(m.procs, cmd)
	return nil
}

func waitHTTP(ctx context.Context, u string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil //nolint:nilerr // not up yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// Stop stops both processes (SIGTERM, then SIGKILL after 10s) and removes their data.
func (m *Monitoring) Stop() {
	m.stopped.Do(func() {
		for i := len(m.procs) - 1; i >= 0; i-- {
			stopGroup(m.procs[i])
		}
		if m.ownLog != nil {
			_ = m.ownLog.Close()
		}
		if m.dir != "" {
			_ = os.RemoveAll(m.dir)
		}
	})
}
