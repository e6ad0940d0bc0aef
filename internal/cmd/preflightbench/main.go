// Command preflightbench (make bench) fills a simulated cluster with objects and Helm releases and
// measures `drydock preflight --checks api-scan` (wall time, peak RSS) side by side with `kubectl
// get` of the resource types the scan reads, in one run on one cluster. The machine is shared and noisy:
// the ratio is the figure to read; the absolute numbers are checked against the targets.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/drydock-dev/drydock/internal/peakrss"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/preflight/apis"
)

func main() {
	klog.SetLogger(logr.Discard())
	namespaces := flag.Int("namespaces", 20, "namespaces to fill")
	perNS := flag.Int("per-namespace", 1050, "objects per namespace (ConfigMaps, Secrets, Services, ServiceAccounts, Roles, RoleBindings)")
	releases := flag.Int("releases", 300, "Helm releases (3 revisions each)")
	reps := flag.Int("reps", 3, "repetitions per tool")
	drydock := flag.String("drydock", "bin/drydock", "the drydock binary")
	files := flag.Int("files", 45000, "manifest files for the files-only scan (0: skip)")
	scan := flag.Bool("api-scan", true, "the api-scan against kubectl on one filled cluster (false: skip)")
	fleet := flag.Int("fleet", 5, "clusters for the fleet scan (0: skip)")
	fleetRTT := flag.String("fleet-rtt", "0,20ms,50ms", "round-trip times to the fleet's clusters, one measurement each (0: reached directly)")
	flag.Parse()
	abs, _ := filepath.Abs(*drydock)
	if *scan {
		if err := run(*namespaces, *perNS, *releases, *reps, abs); err != nil {
			fmt.Fprintf(os.Stderr, "preflightbench: %v\n", err)
			os.Exit(1)
		}
	}
	if *files > 0 {
		if err := benchFiles(abs, *files, *reps); err != nil {
			fmt.Fprintf(os.Stderr, "preflightbench: files: %v\n", err)
			os.Exit(1)
		}
	}
	if *fleet > 0 {
		var rtts []time.Duration
		for _, f := range strings.Split(*fleetRTT, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil {
				fmt.Fprintf(os.Stderr, "preflightbench: -fleet-rtt: %v\n", err)
				os.Exit(2)
			}
			rtts = append(rtts, d)
		}
		if err := benchFleet(context.Background(), abs, *fleet, *reps, rtts); err != nil {
			fmt.Fprintf(os.Stderr, "preflightbench: fleet: %v\n", err)
			os.Exit(1)
		}
	}
}

func run(namespaces, perNS, releases, reps int, drydock string) error {
	ctx := context.Background()
	bin, err := simcluster.BinDir()
	if err != nil {
		return err
	}
	kubectl := filepath.Join(bin, "kubectl")
	drydock, _ = filepath.Abs(drydock)
	c, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop()

	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := fill(ctx, cs, namespaces, perNS, releases)
	if err != nil {
		return err
	}
	fmt.Printf("filled the cluster: %d objects, %d Helm releases (%d revisions) in %s\n", n, releases, 3*releases, time.Since(start).Round(time.Second))

	// The resource types the scan reads: those whose kind has a version v1.38 deprecates or removes
	// (the scan lists their metadata), and Secrets and ConfigMaps, where Helm keeps its releases (the
	// scan lists only Helm's, by label; kubectl lists them all).
	lists, err := cs.Discovery().ServerPreferredResources()
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	target := apis.Release{Major: 1, Minor: 38}
	flagged := apis.FlaggedKinds(target)
	types := []string{"secrets", "configmaps"}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return err
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || r.Name == "events" || !flagged[r.Kind] {
				continue
			}
			if _, deprecated := apis.Lookup(l.GroupVersion, r.Kind); deprecated {
				continue // as the scan: listing through a deprecated API would count as a client to fix
			}
			types = append(types, gv.WithResource(r.Name).GroupResource().String())
		}
	}
	tools := []struct {
		name string
		args []string
	}{
		{"drydock preflight --checks api-scan", []string{drydock, "preflight", "--kubeconfig", c.Kubeconfig, "--checks", "api-scan", "--target", "v" + target.String(), "-o", "json", "--fail-on", "never"}},
		{"kubectl get <same types> -A -o json", []string{kubectl, "--kubeconfig", c.Kubeconfig, "get", strings.Join(types, ","), "-A", "-o", "json", "--chunk-size=500"}},
	}
	type sample struct {
		wall time.Duration
		rss  int64 // KiB
	}
	results := make([][]sample, len(tools))
	var findings int
	for r := 0; r < reps; r++ {
		for i, tool := range tools { // interleaved, so that noise hits both alike
			cmd, peak := peakrss.Command(tool.args[0], tool.args[1:]...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %w\n%s", tool.name, err, stderr.String())
			}
			wall := time.Since(t0)
			rss, err := peak()
			if err != nil {
				return err
			}
			rss >>= 10 // KiB
			results[i] = append(results[i], sample{wall, rss})
			if i == 0 {
				var rep struct {
					Checks []struct {
						Findings []json.RawMessage `json:"findings"`
					} `json:"checks"`
				}
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Checks) != 1 {
					return fmt.Errorf("drydock output: %w", err)
				}
				findings = len(rep.Checks[0].Findings)
			}
		}
	}
	median := func(s []sample) sample {
		w := make([]sample, len(s))
		copy(w, s)
		sort.Slice(w, func(i, j int) bool { return w[i].wall < w[j].wall })
		m := w[len(w)/2]
		for _, x := range s {
			if x.rss > m.rss {
				m.rss = x.rss
			}
		}
		return m
	}
	d, k := median(results[0]), median(results[1])
	fmt.Printf("\n%-40s %12s %14s\n", "tool (median of "+fmt.Sprint(reps)+")", "wall", "peak RSS")
	fmt.Printf("%-40s %12s %10.1f MiB\n", tools[0].name, d.wall.Round(10*time.Millisecond), float64(d.rss)/1024)
	fmt.Printf("%-40s %12s %10.1f MiB\n", tools[1].name, k.wall.Round(10*time.Millisecond), float64(k.rss)/1024)
	fmt.Printf("\nratio drydock/kubectl: wall %.2f, peak RSS %.2f (drydock also reads managedFields, decodes every Helm release and checks /metrics and CRDs; kubectl only lists)\n",
		d.wall.Seconds()/k.wall.Seconds(), float64(d.rss)/float64(k.rss))
	fmt.Printf("drydock reported %d findings\n", findings)
	fmt.Printf("targets on this machine: wall ≤ 10 s %s, peak RSS ≤ 200 MiB %s\n", verdict(d.wall <= 10*time.Second), verdict(d.rss <= 200*1024))
	return nil
}

// fill creates the objects in parallel and returns how many.
func fill(ctx context.Context, cs kubernetes.Interface, namespaces, perNS, releases int) (int, error) {
	var created atomic.Int64
	jobs := make(chan func() error, 1024)
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				if err := job(); err != nil {
					once.Do(func() { firstErr = err })
				} else {
					created.Add(1)
				}
			}
		}()
	}
	padding := strings.Repeat("x", 600)
	for i := 0; i < namespaces; i++ {
		ns := fmt.Sprintf("bench-%02d", i)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return 0, err
		}
		for j := 0; j < perNS; j++ {
			name := fmt.Sprintf("obj-%04d", j)
			meta := metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": fmt.Sprintf("app-%d", j%50)}}
			switch j % 7 {
			case 0, 1, 2:
				// A tenth of these were applied with kubectl.
				if j%10 == 0 {
					meta.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q,"namespace":%q},"data":{"pad":%q}}`, name, ns, padding)}
				}
				jobs <- func() error {
					_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"pad": padding}}, metav1.CreateOptions{})
					return err
				}
			case 3:
				jobs <- func() error {
					_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: meta, StringData: map[string]string{"token": padding}}, metav1.CreateOptions{})
					return err
				}
			case 4:
				jobs <- func() error {
					_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: meta, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone,
						Selector: meta.Labels, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
					return err
				}
			case 5:
				// Some Roles were last applied from manifests written for rbac/v1beta1 (removed in 1.22).
				if j%35 == 5 {
					meta.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: fmt.Sprintf(`{"apiVersion":"rbac.authorization.k8s.io/v1beta1","kind":"Role","metadata":{"name":%q,"namespace":%q}}`, name, ns)}
				}
				jobs <- func() error {
					_, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
					return err
				}
			case 6:
				jobs <- func() error {
					_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta}, metav1.CreateOptions{})
					return err
				}
			}
		}
	}
	for r := 0; r < releases; r++ {
		ns := fmt.Sprintf("bench-%02d", r%namespaces)
		name := fmt.Sprintf("release-%03d", r)
		for rev := 1; rev <= 3; rev++ {
			data, err := helmRelease(ns, name, rev, r%10 == 0)
			if err != nil {
				return 0, err
			}
			status := "superseded"
			if rev == 3 {
				status = "deployed"
			}
			meta := metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, rev),
				Labels: map[string]string{"owner": "helm", "name": name, "version": fmt.Sprint(rev), "status": status}}
			jobs <- func() error {
				_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: meta, Type: "helm.sh/release.v1", Data: map[string][]byte{"release": data}}, metav1.CreateOptions{})
				return err
			}
		}
	}
	close(jobs)
	wg.Wait()
	return int(created.Load()), firstErr
}

// helmRelease encodes a release as Helm v3 stores it: JSON, gzip, base64.
func helmRelease(ns, name string, rev int, old bool) ([]byte, error) {
	ingressAPI := "networking.k8s.io/v1"
	if old {
		ingressAPI = "networking.k8s.io/v1beta1"
	}
	var m strings.Builder
	for _, doc := range []struct{ api, kind, file string }{
		{"v1", "ServiceAccount", "serviceaccount.yaml"}, {"v1", "ConfigMap", "configmap.yaml"}, {"v1", "Service", "service.yaml"},
		{"apps/v1", "Deployment", "deployment.yaml"}, {ingressAPI, "Ingress", "ingress.yaml"}, {"autoscaling/v2", "HorizontalPodAutoscaler", "hpa.yaml"},
	} {
		fmt.Fprintf(&m, "---\n# Source: %s/templates/%s\napiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/name: %s\n    app.kubernetes.io/instance: %s\n    helm.sh/chart: %s-1.%d.0\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/%s:1.%d.0\n        resources: {requests: {cpu: 100m, memory: 128Mi}}\n",
			name, doc.file, doc.api, doc.kind, name, name, name, name, rev, name, rev)
	}
	js, err := json.Marshal(map[string]any{"name": name, "namespace": ns, "version": rev, "info": map[string]any{"status": "deployed"},
		"chart": map[string]any{"metadata": map[string]any{"name": name, "version": fmt.Sprintf("1.%d.0", rev)}}, "manifest": m.String(),
		"config": map[string]any{"replicas": 2}})
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(gz.Bytes())), nil
}
