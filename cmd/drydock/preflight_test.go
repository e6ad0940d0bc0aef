package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/preflight"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// preflightRun runs the binary; kubeconfig "" means a machine with no kubeconfig at all.
func preflightRun(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(drydockBinary(t), append([]string{"preflight"}, args...)...)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	if kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	}
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

const corpus = "../../testdata/preflight/manifests/"

// TestPreflightFilesOnlyForCI: a pull-request pipeline has manifests and no cluster.
func TestPreflightFilesOnlyForCI(t *testing.T) {
	out, errOut, code := preflightRun(t, "", "--target", "v1.25", "--manifests", corpus+"removed-1.25.yaml", "-o", "sarif")
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, errOut)
	}
	rep, err := sarif.FromString(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Validate(); err != nil {
		t.Fatalf("SARIF does not validate against the 2.1.0 schema: %v", err)
	}
	if n := len(rep.Runs[0].Results); n != 5 {
		t.Fatalf("%d SARIF results, want 5", n)
	}
	loc := rep.Runs[0].Results[0].Locations[0].PhysicalLocation
	if !strings.HasSuffix(*loc.ArtifactLocation.URI, "removed-1.25.yaml") || *loc.Region.StartLine != 1 {
		t.Errorf("first result at %s:%d, want removed-1.25.yaml:1", *loc.ArtifactLocation.URI, *loc.Region.StartLine)
	}
	if !strings.Contains(errOut, "no kubeconfig: scanning the --manifests files only") {
		t.Errorf("stderr does not say it scans files only:\n%s", errOut)
	}

	// JUnit: a testcase per check, a failure per finding at --fail-on, checks without a cluster skipped.
	out, _, code = preflightRun(t, "", "--target", "v1.26", "--manifests", corpus+"removed-1.25.yaml,"+corpus+"removed-1.26.yaml", "-o", "junit", "--fail-on", "deprecated")
	if code != 3 {
		t.Fatalf("junit: exit %d, want 3", code)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Name     string    `xml:"name,attr"`
				Skipped  *struct{} `xml:"skipped"`
				Failures []struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &suites); err != nil {
		t.Fatalf("junit: %v\n%s", err, out)
	}
	cases := suites.Suites[0].Cases
	if len(cases) != len(preflight.Checks) || cases[0].Name != "api-scan" || len(cases[0].Failures) != 7 || cases[1].Skipped == nil {
		t.Errorf("junit: unexpected cases:\n%s", out)
	}

	// Report only: exit 0 whatever is found; the negative controls find nothing.
	if _, errOut, code := preflightRun(t, "", "--target", "v1.25", "--manifests", corpus+"removed-1.25.yaml", "--fail-on", "never"); code != 0 {
		t.Errorf("--fail-on never: exit %d\n%s", code, errOut)
	}
	out, _, code = preflightRun(t, "", "--target", "v1.38", "--manifests", corpus+"fine", "-o", "markdown")
	if code != 0 || !strings.Contains(out, "| api-scan | 0 | 0 | 0 |") {
		t.Errorf("negative controls: exit %d\n%s", code, out)
	}

	// Bad usage is exit 2 with a message that says what to do.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--manifests", corpus}, "no target version: give --target"},
		{[]string{"--target", "v1.25", "--manifests", "no/such/dir"}, "--manifests no/such/dir: no such file or directory"},
		{[]string{"--target", "v1.25", "--manifests", corpus, "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"--target", "v1.25", "--manifests", corpus, "--fail-on", "sometimes"}, `--fail-on "sometimes"`},
		{[]string{"--target", "v1.25", "--manifests", corpus, "--checks", "vibes"}, `no check "vibes"`},
		{[]string{"--target", "v1.25"}, "no kubeconfig"},
	} {
		_, errOut, code := preflightRun(t, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestPreflightOnCluster runs the command against the simulated cluster: a Helm release that
// renders a removed API fails the gate; --helm=false leaves Helm out; bad targets are usage errors.
func TestPreflightOnCluster(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pf"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rel, _ := json.Marshal(map[string]any{"name": "shop", "namespace": "pf", "version": 1, "info": map[string]any{"status": "deployed"},
		"manifest": "---\n# Source: shop/templates/cron.yaml\napiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: nightly\n"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(rel)
	_ = zw.Close()
	_, err := cluster.Client.CoreV1().Secrets("pf").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.shop.v1",
		Labels: map[string]string{"owner": "helm", "name": "shop", "version": "1", "status": "deployed"}}, Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, code := preflightRun(t, cluster.Kubeconfig, "--checks", "api-scan,skew-check", "-o", "json")
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, errOut)
	}
	var rep preflight.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Target != "1.38" || rep.Server == "" {
		t.Errorf("target %q server %q: want the cluster's next minor, 1.38", rep.Target, rep.Server)
	}
	found := false
	for _, f := range rep.Findings() {
		if f.Source == "helm" && f.Object == "CronJob pf/nightly" && f.API != nil && f.API.RemovedIn == "1.25" && f.API.Replacement == "batch/v1 CronJob" {
			found = true
		}
	}
	if !found {
		t.Errorf("the Helm release's removed CronJob is not reported:\n%s", out)
	}

	out, _, _ = preflightRun(t, cluster.Kubeconfig, "--checks", "api-scan", "--helm=false", "-o", "yaml")
	if strings.Contains(out, "pf/nightly") {
		t.Errorf("--helm=false still scanned Helm releases:\n%s", out)
	}
	var asYAML preflight.Report
	if err := yaml.Unmarshal([]byte(out), &asYAML); err != nil || len(asYAML.Results) != 1 {
		t.Errorf("-o yaml: %v\n%s", err, out)
	}

	for _, tc := range []struct{ target, want string }{
		{"v1.39", "skips a minor release"},
		{"v1.35", "older than the cluster"},
	} {
		_, errOut, code := preflightRun(t, cluster.Kubeconfig, "--target", tc.target)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--target %s: exit %d, %q; want 2 and %q", tc.target, code, errOut, tc.want)
		}
	}
}
