package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/drydock-dev/drydock/internal/buildinfo"
	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
)

func TestCheckSkew(t *testing.T) {
	simcluster.Need(t)
	for _, tc := range []struct {
		client, server string
		supported      bool
		mention        string
	}{
		{"v1.37.1", "v1.37.1", true, "both 1.37"},
		{"v1.37.1", "v1.36.4", true, "within one minor"},
		{"v1.37.1", "v1.38.0", true, "within one minor"},
		{"v1.37.1", "v1.35.2", false, "2 minor versions newer"},
		{"v1.37.1", "v1.39.0", false, "upgrade drydock"},
		{"v1.37.1", "v2.0.0", false, "major"},
		{"v1.37.1", "v1.36.0-eks-123abc", true, "within one minor"},
		{"v1.37.1", "v0.0.0-master+$Format:%H$", false, "major"},
		{"v1.37.1", "garbage", false, "cannot read server version"},
	} {
		t.Run(tc.client+"/"+tc.server, func(t *testing.T) {
			got := CheckSkew(tc.client, tc.server)
			if got.Supported != tc.supported || !strings.Contains(got.Message, tc.mention) {
				t.Fatalf("CheckSkew(%q, %q) = %+v, want supported=%v and a message mentioning %q",
					tc.client, tc.server, got, tc.supported, tc.mention)
			}
		})
	}
}

func TestKubernetesClientVersionMatchesGoMod(t *testing.T) {
	simcluster.Need(t)
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	got := buildinfo.KubernetesClientVersion()
	want := "k8s.io/client-go v0." + strings.TrimPrefix(got, "v1.")
	if got == "" || !strings.Contains(string(mod), want) {
		t.Fatalf("KubernetesClientVersion() = %q, but go.mod does not require %q", got, want)
	}
}

// execute runs the command tree in-process with args and returns stdout, stderr and the exit code.
func execute(t *testing.T, args ...string) (string, string, exitcode.Code) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"drydock"}, args...), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

func TestVersionAgainstCluster(t *testing.T) {
	simcluster.Need(t)
	stdout, stderr, code := execute(t, "version", "-o", "json", "--kubeconfig", cluster.Kubeconfig)
	if code != exitcode.OK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var report VersionReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, stdout)
	}
	if report.Server == nil || report.Server.GitVersion != simcluster.KubernetesVersion {
		t.Fatalf("server version %+v, want %s", report.Server, simcluster.KubernetesVersion)
	}
	if report.Skew == nil || !report.Skew.Supported {
		t.Fatalf("skew %+v, want supported", report.Skew)
	}
	if report.Client.Kubernetes != simcluster.KubernetesVersion {
		t.Fatalf("client is built with Kubernetes %s, the test cluster runs %s: pin all k8s.io modules to one version",
			report.Client.Kubernetes, simcluster.KubernetesVersion)
	}

	stdout, _, code = execute(t, "version", "--kubeconfig", cluster.Kubeconfig)
	if code != exitcode.OK || !strings.Contains(stdout, "Server Version: "+simcluster.KubernetesVersion) ||
		!strings.Contains(stdout, "Version Skew:   supported") {
		t.Fatalf("exit %d, human output:\n%s", code, stdout)
	}
}

func TestVersionUnreachableServer(t *testing.T) {
	simcluster.Need(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: gone, context: {cluster: gone, user: u}}]
users: [{name: u, user: {token: x}}]
current-context: gone
`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := execute(t, "version", "--kubeconfig", kubeconfig, "--request-timeout", "2s")
	if code != exitcode.Failure {
		t.Fatalf("exit %d, want %d", code, exitcode.Failure)
	}
	if !strings.Contains(stdout, "Client Version:") {
		t.Errorf("the client version must be printed even when the server is down:\n%s", stdout)
	}
	if !strings.HasPrefix(stderr, "error: version: get server version:") {
		t.Errorf("stderr %q: the error must start with the operation", stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	simcluster.Need(t)
	for _, args := range [][]string{
		{"no-such-command"},
		{"version", "--no-such-flag"},
		{"version", "extra-arg"},
		{"version", "--client", "-o", "xml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, stderr, code := execute(t, args...)
			if code != exitcode.Usage {
				t.Fatalf("exit %d, want %d (usage); stderr:\n%s", code, exitcode.Usage, stderr)
			}
			if !strings.Contains(stderr, "--help") {
				t.Errorf("a usage error should point at --help:\n%s", stderr)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	simcluster.Need(t)
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, stderr, code := execute(t, "completion", shell)
		if code != exitcode.OK || !strings.Contains(stdout, "drydock") {
			t.Fatalf("completion %s: exit %d, %d bytes, stderr %s", shell, code, len(stdout), stderr)
		}
	}
	// Node names come from the cluster, with their state and kubelet.
	if _, err := cluster.CreateNode(context.Background(), "complete-me", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	stdout, _, _ := execute(t, "__complete", "drain", "--kubeconfig", cluster.Kubeconfig, "complete-")
	if !strings.Contains(stdout, "complete-me\tschedulable, kubelet") {
		t.Errorf("drain NODE completion:\n%s", stdout)
	}
}

// TestKubectlPlugin builds the real binary, installs it as kubectl-drydock on PATH and runs it
// through the kubectl built at the cluster's version.
func TestKubectlPlugin(t *testing.T) {
	simcluster.Need(t)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-ldflags", "-X github.com/drydock-dev/drydock/internal/buildinfo.Version=v9.9.9-test",
		"-o", filepath.Join(dir, "kubectl-drydock"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := exec.Command(filepath.Join(bin, "kubectl"), "drydock", "version", "--kubeconfig", cluster.Kubeconfig)
	kubectl.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := kubectl.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl drydock version: %v\n%s", err, out)
	}
	for _, want := range []string{"Client Version: v9.9.9-test", "Server Version: " + simcluster.KubernetesVersion} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl drydock version printed\n%s\nwant %q", out, want)
		}
	}

	help := exec.Command(filepath.Join(dir, "kubectl-drydock"), "--help")
	out, err = help.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kubectl drydock [command]") {
		t.Fatalf("as a plugin, help should read `kubectl drydock [command]`: %v\n%s", err, out)
	}
}
