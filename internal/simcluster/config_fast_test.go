package simcluster

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// TestKwokConfig: the configuration kwokctl gets parses, document by document, whatever the options;
// the client rates reach the controller-manager and the scheduler; the apiserver closes its watches
// when stopped (else one open watch holds its exit for 60s); kwok's pod workers reach a
// KwokConfiguration; the pod-create Stage writes its event unless told not to; and the options (bind
// address, etcd peer port) stay where kwokctl reads them (a placeholder once replaced inside a
// comment broke the first document, and kwokctl silently fell back to its defaults).
func TestKwokConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    Options
		patched int  // components patched
		workers any  // kwok's podPlayStageParallelism, nil for kwok's default
		event   bool // the pod-create Stage records an event
	}{
		{name: "defaults", opts: Options{}, patched: 2, event: true},
		{name: "client rates", opts: Options{APIQPS: 300}, patched: 4, event: true},
		{name: "large copy", opts: Options{APIQPS: 200, PodWorkers: 32, NoPodEvents: true}, patched: 4, workers: int64(32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := kwokConfig(tc.opts, 4242)
			dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(cfg)), 4096)
			var first map[string]any
			var workers any
			event := false
			for i := 0; ; i++ {
				var doc map[string]any
				err := dec.Decode(&doc)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("document %d: %v\n%s", i, err, cfg)
				}
				if i == 0 {
					first = doc
				}
				switch doc["kind"] {
				case "KwokConfiguration":
					o, _ := doc["options"].(map[string]any)
					workers = number(o["podPlayStageParallelism"])
				case "Stage":
					if m, _ := doc["metadata"].(map[string]any); m["name"] == "pod-create" {
						s, _ := doc["spec"].(map[string]any)
						next, _ := s["next"].(map[string]any)
						_, event = next["event"]
						if next["statusTemplate"] == nil {
							t.Errorf("pod-create has no status template: %v", next)
						}
					}
				}
			}
			opts, _ := first["options"].(map[string]any)
			if first["kind"] != "KwokctlConfiguration" || opts["bindAddress"] != "127.0.0.1" || number(opts["etcdPeerPort"]) != int64(4242) {
				t.Fatalf("first document %v", first)
			}
			if patches, _ := first["componentsPatches"].([]any); len(patches) != tc.patched {
				t.Errorf("%d components patched, want %d: %v", len(patches), tc.patched, patches)
			}
			if !strings.Contains(cfg, "- name: kube-apiserver\n  extraArgs:\n  - key: shutdown-watch-termination-grace-period\n") {
				t.Errorf("the apiserver does not close its watches when stopped:\n%s", cfg)
			}
			if workers != tc.workers {
				t.Errorf("kwok's pod workers %v, want %v", workers, tc.workers)
			}
			if event != tc.event {
				t.Errorf("pod-create records an event: %v, want %v", event, tc.event)
			}
		})
	}
}

// number is a decoded YAML number as an int64 (the decoder gives int64 or float64), else v.
func number(v any) any {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return v
}
