package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// fleetKubeconfig writes one kubeconfig with a context per cluster (named as the map says), and a
// "down" context whose apiserver nobody answers.
func fleetKubeconfig(t *testing.T, clusters map[string]*simcluster.Cluster) string {
	t.Helper()
	merged := clientcmdapi.NewConfig()
	for name, c := range clusters {
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		ctx := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[name] = cfg.Clusters[ctx.Cluster]
		merged.AuthInfos[name] = cfg.AuthInfos[ctx.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		merged.CurrentContext = name
	}
	merged.Clusters["down"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", InsecureSkipTLSVerify: true}
	merged.AuthInfos["down"] = &clientcmdapi.AuthInfo{Token: "nobody"}
	merged.Contexts["down"] = &clientcmdapi.Context{Cluster: "down", AuthInfo: "down"}
	path := filepath.Join(t.TempDir(), "fleet.kubeconfig")
	if err := clientcmd.WriteToFile(*merged, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPreflightFleet: three simulated clusters of its own (the package's shared one has other tests'
// budgets) — one at the previous minor, two at the current one, one of those with a budget that can
// never allow an eviction — and a context nobody answers, in one
// kubeconfig. `drydock preflight --all-contexts` checks them in parallel and writes one report: each
// cluster for its own next minor, the unreachable one reported as not checked; the exit status puts a
// blocking finding before an unreachable cluster. JSON is keyed by context, JUnit has a testsuite per cluster, the table a summary.
func TestPreflightFleet(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	old, err := simcluster.Start(ctx, simcluster.Options{Previous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Stop() }()
	current, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = current.Stop() }()
	blocked, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = blocked.Stop() }()
	// In "blocked": a one-replica workload under a minAvailable: 100% budget.
	if _, err := blocked.CreateNode(ctx, "n1", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := blocked.Client.AppsV1().Deployments("default").Create(ctx, simcluster.Deployment("default", "db", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	all := intstr.FromString("100%")
	if _, err := blocked.Client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &all, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := blocked.WaitDeploymentReady(ctx, "default", "db", time.Minute); err != nil {
		t.Fatal(err)
	}
	kc := fleetKubeconfig(t, map[string]*simcluster.Cluster{"old": old, "current": current, "blocked": blocked})

	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(drydockBinary(t), append(args, "--kubeconfig", kc, "--checks", "skew-check,pdb-check")...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	// A blocking finding is never masked by an unreachable cluster: exit 3, and stderr names both.
	out, errOut, code := run("preflight", "--all-contexts", "-o", "json", "--parallel", "3")
	if code != 3 || !strings.Contains(errOut, "1 of 4 cluster(s) with findings at or above --fail-on removed (blocked)") || !strings.Contains(errOut, "1 of 4 cluster(s) could not be checked (down)") {
		t.Errorf("exit %d, want 3 (blocked's finding first), saying both blocked and down\n%s", code, errOut)
	}
	var rep struct {
		SchemaVersion int    `json:"schemaVersion"`
		Kind          string `json:"kind"`
		Clusters      map[string]struct {
			Error  string `json:"error"`
			Server string `json:"serverVersion"`
			Target string `json:"target"`
			Checks []struct {
				Check    string `json:"check"`
				Findings []struct {
					Severity string `json:"severity"`
					Kind     string `json:"kind"`
					Name     string `json:"name"`
				} `json:"findings"`
			} `json:"checks"`
		} `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Kind != "FleetReport" || rep.SchemaVersion != 1 || len(rep.Clusters) != 4 {
		t.Fatalf("report: kind %q, schema %d, %d clusters\n%s", rep.Kind, rep.SchemaVersion, len(rep.Clusters), out)
	}
	for name, want := range map[string]string{"old": simcluster.PreviousVersion + " 1.37", "current": simcluster.KubernetesVersion + " 1.38", "blocked": simcluster.KubernetesVersion + " 1.38"} {
		c := rep.Clusters[name]
		if got := c.Server + " " + c.Target; got != want || c.Error != "" {
			t.Errorf("cluster %s: server and target %q (error %q), want %q", name, got, c.Error, want)
		}
	}
	if c := rep.Clusters["down"]; c.Error == "" || len(c.Checks) != 0 {
		t.Errorf("cluster down: %+v, want an error and no checks", c)
	}
	budgetFound := false
	for _, ch := range rep.Clusters["blocked"].Checks {
		for _, f := range ch.Findings {
			budgetFound = budgetFound || (ch.Check == "pdb-check" && f.Severity == "error" && f.Kind == "PodDisruptionBudget" && f.Name == "db")
		}
	}
	if !budgetFound {
		t.Errorf("cluster blocked: no pdb-check error for PodDisruptionBudget default/db\n%s", out)
	}
	for _, name := range []string{"old", "current", "blocked", "down"} {
		if !strings.Contains(errOut, "drydock: "+name+": ") {
			t.Errorf("no progress line for %s on stderr:\n%s", name, errOut)
		}
	}

	// Without the unreachable one: the worst is the blocked cluster's findings (exit 3).
	out, _, code = run("preflight", "--contexts", "old,current,blocked", "-o", "junit")
	var junit struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Failures int    `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &junit); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var suites []string
	for _, s := range junit.Suites {
		suites = append(suites, s.Name)
		if (s.Failures > 0) != (s.Name == "blocked") {
			t.Errorf("testsuite %s has %d failure(s)", s.Name, s.Failures)
		}
	}
	if code != 3 || strings.Join(suites, ",") != "old,current,blocked" {
		t.Errorf("exit %d, testsuites %v; want 3 and one testsuite per cluster in order\n%s", code, suites, out)
	}

	out, _, code = run("preflight", "--contexts", "current,down", "--cluster-timeout", "30s")
	if code != 1 {
		t.Errorf("current and down: exit %d, want 1 (a cluster not checked)", code)
	}
	for _, want := range []string{"pre-flight of 2 cluster(s)", "CONTEXT", "current  ", "passes", "down ", "could not check: ", "=== context current: pre-flight for Kubernetes 1.38"} {
		if !strings.Contains(out, want) {
			t.Errorf("table: no %q:\n%s", want, out)
		}
	}
}
