package preflight

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
