package preflight

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/preflight/apis"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, path string, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test -update rewrites it):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func lines(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%-7s %s: %s\n", f.Severity, f.Object, f.Message)
	}
	return b.String()
}

// TestScanManifestCorpus scans the corpus for each target release: the removals in 1.16, 1.22,
// 1.25, 1.26, 1.27, 1.29, 1.32 and later, the negative controls in fine/ that must never be flagged,
// and an unrendered template that must be reported, not skipped.
func TestScanManifestCorpus(t *testing.T) {
	for _, target := range []string{"1.15", "1.16", "1.22", "1.25", "1.26", "1.27", "1.29", "1.32", "1.34", "1.37", "1.38"} {
		t.Run(target, func(t *testing.T) {
			r, err := apis.ParseRelease(target)
			if err != nil {
				t.Fatal(err)
			}
			in := &Input{Target: r, Manifests: []string{"../testdata/preflight/manifests"}}
			rep, err := Run(context.Background(), in, []string{"api-scan"})
			if err != nil {
				t.Fatal(err)
			}
			fs := rep.Findings()
			for _, f := range fs {
				if strings.Contains(f.Object, "/fine/") {
					t.Errorf("negative control flagged: %s: %s", f.Object, f.Message)
				}
			}
			golden(t, filepath.Join("testdata", "scan-"+target+".golden"), lines(fs))
		})
	}
}

// TestStoredObjectWriters: an object written before the upgrade through a since-removed API keeps
// that apiVersion in its managedFields. A live apiserver drops such entries when a client sends
// them (it cannot convert them), so this part is tested on the object itself; the cluster test
// covers real writes through a served deprecated API.
func TestStoredObjectWriters(t *testing.T) {
	s := &scanner{in: &Input{Target: apis.Release{Major: 1, Minor: 38}}}
	s.object(&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web",
		ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "old-ci", APIVersion: "extensions/v1beta1"},
			{Manager: "helm", APIVersion: "extensions/v1beta1"},
			{Manager: "kube-controller-manager", APIVersion: "apps/v1beta2"}, // the control plane's own: skipped
			{Manager: "kubectl", APIVersion: "apps/v1"},
		},
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"apps/v1beta1","kind":"Deployment"}`},
	}}, "Deployment")
	got := lines(s.findings)
	want := `error   Deployment shop/web: extensions/v1beta1 Deployment is removed in 1.16 (deprecated in 1.8): last written through it by "old-ci", "helm"
error   Deployment shop/web: apps/v1beta1 Deployment is removed in 1.16 (deprecated in 1.8): the last kubectl apply used it
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestUnreadablePathsAreFindings: a dangling symlink and a symlink to a directory named like a YAML
// file under --manifests are each an error finding; the rest of the files are still scanned.
func TestUnreadablePathsAreFindings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pdb.yaml"), []byte("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: web, namespace: shop}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere.yaml"), filepath.Join(dir, "gone.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "linked.yaml")); err != nil {
		t.Fatal(err)
	}
	r, _ := apis.ParseRelease("1.25")
	rep, err := Run(context.Background(), &Input{Target: r, Manifests: []string{dir}}, []string{"api-scan"})
	if err != nil {
		t.Fatalf("one unreadable path ended the scan: %v", err)
	}
	var got []string
	for _, f := range rep.Findings() {
		got = append(got, filepath.Base(f.Object)+": "+f.Message)
	}
	text := strings.Join(got, "\n")
	for _, want := range []string{"gone.yaml: could not be read", "linked.yaml: could not be read", "pdb.yaml:1: policy/v1beta1 PodDisruptionBudget"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
}

// TestManifestEdgeCases: what used to be lost — documents after a broken one, JSON files holding
// several objects, apiVersion or kind from a YAML alias or merge key — is scanned, and an unrendered
// template that happens to parse as YAML is reported, not skipped.
func TestManifestEdgeCases(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, text string
		want             []string // "line: message part"
	}{
		{"after a broken document", "m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [unclosed\n---\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: b}\n",
			[]string{": not valid YAML", "7: policy/v1beta1 PodDisruptionBudget"}},
		{"several JSON objects", "m.json", "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \"policy/v1beta1\",\n \"kind\": \"PodDisruptionBudget\", \"metadata\": {\"name\": \"b\"}}\n",
			[]string{"2: policy/v1beta1 PodDisruptionBudget"}},
		{"alias and merge key", "m.yaml", "apiVersion: v1\nkind: List\nitems:\n  - &pdb {apiVersion: policy/v1beta1, kind: PodDisruptionBudget, metadata: {name: a}}\n  - <<: *pdb\n    metadata: {name: merged}\n---\nmetadata: {name: c, labels: {api: &v policy/v1beta1}}\napiVersion: *v\nkind: PodDisruptionBudget\n",
			[]string{"4: policy/v1beta1 PodDisruptionBudget", "PodDisruptionBudget merged", "PodDisruptionBudget c"}},
		{"a template that parses", "m.yaml", "apiVersion: \"{{ .Values.apiVersion }}\"\nkind: PodDisruptionBudget\nmetadata: {name: t}\n",
			[]string{"1: an unrendered template"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			r, _ := apis.ParseRelease("1.25")
			rep, err := Run(context.Background(), &Input{Target: r, Manifests: []string{dir}}, []string{"api-scan"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range rep.Findings() {
				got = append(got, fmt.Sprintf("%d: %s", f.Line, f.Message))
			}
			text := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("no %q in\n%s", w, text)
				}
			}
		})
	}
}
