package simcluster

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// TestKwokConfig: the configuration kwokctl gets parses, document by document, with or without the
// control plane's client rates; the rates reach the controller-manager and the scheduler; and the
// options (bind address, etcd peer port) stay where kwokctl reads them (a placeholder once replaced
// inside a comment broke the first document, and kwokctl silently fell back to its defaults).
func TestKwokConfig(t *testing.T) {
	t.Parallel()
	for _, qps := range []int{0, 300} {
		cfg := kwokConfig(Options{APIQPS: qps}, 4242)
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(cfg)), 4096)
		var first map[string]any
		for i := 0; ; i++ {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("APIQPS %d: document %d: %v\n%s", qps, i, err, cfg)
			}
			if i == 0 {
				first = doc
			}
		}
		opts, _ := first["options"].(map[string]any)
		if first["kind"] != "KwokctlConfiguration" || opts["bindAddress"] != "127.0.0.1" || opts["etcdPeerPort"] != float64(4242) && opts["etcdPeerPort"] != int64(4242) {
			t.Fatalf("APIQPS %d: first document %v", qps, first)
		}
		patches, _ := first["componentsPatches"].([]any)
		want := 1
		if qps > 0 {
			want = 3
		}
		if len(patches) != want {
			t.Errorf("APIQPS %d: %d components patched, want %d: %v", qps, len(patches), want, patches)
		}
	}
}
