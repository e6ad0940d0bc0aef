// Command featuregates prints the feature gates of the Kubernetes release this module pins (every
// gate kube-apiserver, kube-controller-manager, kube-scheduler and the kubelet know, with its versioned
// specs) as JSON, for drydock's generator (internal/cmd/genfeatures). Run it in this module for the
// current release, and with -modfile=../cluster-prev/go.mod for the previous one.
package main

import (
	"encoding/json"
	"os"
	"runtime/debug"
	"sort"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
	_ "k8s.io/kubernetes/pkg/features" // registers the Kubernetes gates with the default gate
)

type spec struct {
	Version    string `json:"version"`
	Default    bool   `json:"default"`
	Locked     bool   `json:"locked,omitempty"`
	PreRelease string `json:"preRelease"`
}

func main() {
	all := utilfeature.DefaultMutableFeatureGate.GetAllVersioned()
	out := struct {
		Kubernetes string            `json:"kubernetes"`
		Gates      map[string][]spec `json:"gates"`
	}{Gates: map[string][]spec{}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/kubernetes" {
				out.Kubernetes = d.Version
			}
		}
	}
	for name, specs := range all {
		specs = append(specs[:0:0], specs...)
		sort.SliceStable(specs, func(i, j int) bool { return specs[i].Version.LessThan(specs[j].Version) })
		var ss []spec
		for _, s := range specs {
			v := ""
			if s.Version != nil {
				v = s.Version.String()
			}
			ss = append(ss, spec{Version: v, Default: s.Default, Locked: s.LockToDefault, PreRelease: string(s.PreRelease)})
		}
		out.Gates[string(name)] = ss
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}
