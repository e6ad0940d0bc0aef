package preflight

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// scanFiles runs api-scan over paths for Kubernetes 1.25 and lists each finding as
// "SEVERITY OBJECT [REF]: MESSAGE | FIX".
func scanFiles(t *testing.T, stdin []byte, paths ...string) []string {
	t.Helper()
	rep, err := Run(context.Background(), &Input{Target: apis.Release{Major: 1, Minor: 25}, Manifests: paths, Stdin: stdin}, []string{"api-scan"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range rep.Findings() {
		out = append(out, fmt.Sprintf("%s %s [%s]: %s | %s", f.Severity, f.Object, f.ObjectRef, f.Message, f.Fix))
	}
	return out
}

// TestUnrenderedTemplates: every unrendered template is an error finding at its file and line, with
// the fix that renders it — quoted, unquoted (YAML reads `{{ … }}` as a flow mapping), in a name,
// or a control action YAML cannot read — and no object of such a document is reported (with an empty
// name, as a templated name used to be).
func TestUnrenderedTemplates(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "manifests", "templates")
	for _, tc := range []struct {
		file string
		want []string // "LINE" of each error finding, in order
	}{
		{"unquoted-apiversion.yaml", []string{"2"}},
		{"templated-name.yaml", []string{"4"}},
		{"control.yaml", []string{"1"}},
		{"quoted.yaml", []string{"6"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			got := scanFiles(t, nil, filepath.Join(dir, tc.file))
			var lines []string
			for _, g := range got {
				if !strings.HasPrefix(g, "error ") || !strings.Contains(g, "an unrendered template") || !strings.Contains(g, "| "+TemplateFix) {
					t.Errorf("not an unrendered-template error with its fix: %s", g)
					continue
				}
				obj, _, _ := strings.Cut(strings.TrimPrefix(g, "error "), " ")
				file, line, _ := strings.Cut(obj, ":")
				if filepath.Base(file) != tc.file {
					t.Errorf("finding names %s, want %s", file, tc.file)
				}
				lines = append(lines, line)
			}
			if !slices.Equal(lines, tc.want) {
				t.Errorf("template findings at lines %v, want %v:\n%s", lines, tc.want, strings.Join(got, "\n"))
			}
		})
	}
}

// TestManifestsFromStdin: --manifests - scans standard input, YAML or a JSON stream, named <stdin>
// with its lines; given twice it is scanned once.
func TestManifestsFromStdin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		paths      []string
		want       []string
	}{
		{"yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: b, namespace: shop}\n",
			[]string{"-"}, []string{"error <stdin>:5 [PodDisruptionBudget shop/b]: policy/v1beta1 PodDisruptionBudget is removed in 1.25"}},
		{"json stream", "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \"policy/v1beta1\", \"kind\": \"PodDisruptionBudget\", \"metadata\": {\"name\": \"b\"}}\n",
			[]string{"-"}, []string{"error <stdin>:2 [PodDisruptionBudget b]: policy/v1beta1 PodDisruptionBudget is removed in 1.25"}},
		{"given twice", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: b}\n",
			[]string{"-", "-"}, []string{"error <stdin>:1 [PodDisruptionBudget b]"}},
		{"a rendered chart's template", "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: {{ .Release.Name }}\n",
			[]string{"-"}, []string{"error <stdin>:6 []: an unrendered template"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := scanFiles(t, []byte(tc.text), tc.paths...)
			if len(got) != len(tc.want) {
				t.Fatalf("%d findings, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("finding %d: %s\nwant it to start with %s", i, got[i], w)
				}
			}
		})
	}
	t.Run("not given", func(t *testing.T) {
		t.Parallel()
		got := scanFiles(t, nil, "-")
		if len(got) != 1 || !strings.Contains(got[0], "could not be read") || !strings.Contains(got[0], "standard input") {
			t.Errorf("findings: %v", got)
		}
	})
}

// TestOverlappingPathsScannedOnce: one file reached through several paths (its directory and
// itself, ./x and x, a symlink) is scanned, and reported, once.
func TestOverlappingPathsScannedOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "pdb.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: web, namespace: shop}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// filepath.Join would clean these: written as a user types them.
	dotted := dir + "/./pdb.yaml"
	roundabout := dir + "/../" + filepath.Base(dir) + "/pdb.yaml"
	for _, tc := range []struct {
		name  string
		paths []string
	}{
		{"a directory and a file in it", []string{dir, file}},
		{"a file and the directory", []string{file, dir}},
		{"./x and x", []string{dotted, file, roundabout}},
		{"twice", []string{file, file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := scanFiles(t, nil, tc.paths...)
			if len(got) != 1 {
				t.Errorf("%d findings, want the file's one:\n%s", len(got), strings.Join(got, "\n"))
			}
		})
	}
	t.Run("a symlink to it", func(t *testing.T) {
		t.Parallel()
		ln := filepath.Join(t.TempDir(), "ln.yaml")
		if err := os.Symlink(file, ln); err != nil {
			t.Fatal(err)
		}
		if got := scanFiles(t, nil, file, ln); len(got) != 1 {
			t.Errorf("%d findings, want 1:\n%s", len(got), strings.Join(got, "\n"))
		}
	})
}

// TestClusterScopedDropsNamespace: a cluster-scoped object written with a namespace is reported
// without it (the apiserver ignores it); a namespaced one keeps its own.
func TestClusterScopedDropsNamespace(t *testing.T) {
	t.Parallel()
	got := scanFiles(t, nil, filepath.Join("testdata", "manifests", "scope", "cluster-scoped.yaml"))
	want := []string{
		"[CustomResourceDefinition widgets.example.com]: apiextensions.k8s.io/v1beta1 CustomResourceDefinition is removed in 1.22 (deprecated in 1.16): CustomResourceDefinition widgets.example.com |",
		"[PriorityClass high]: scheduling.k8s.io/v1beta1 PriorityClass is removed in 1.22",
		"[PodDisruptionBudget shop/web]: policy/v1beta1 PodDisruptionBudget is removed in 1.25 (deprecated in 1.21): PodDisruptionBudget shop/web |",
	}
	if len(got) != len(want) {
		t.Fatalf("%d findings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("finding %d: %s\nwant %s", i, got[i], w)
		}
	}
}
