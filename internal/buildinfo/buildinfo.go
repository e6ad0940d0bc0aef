// Package buildinfo holds what the build stamped into the binary and what the module graph says about it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set with -ldflags "-X github.com/drydock-dev/drydock/internal/buildinfo.Version=v0.1.0 ...".
var (
	Version = "v0.0.0-dev"
	Commit  = ""
	Date    = ""
)

// Info is drydock's own version and the Kubernetes client library it was built with.
type Info struct {
	Version    string `json:"version"`
	Commit     string `json:"gitCommit,omitempty"`
	BuildDate  string `json:"buildDate,omitempty"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
	Kubernetes string `json:"kubernetesClientVersion"`
}

// Get returns the build's Info.
func Get() Info {
	return Info{
		Version:    Version,
		Commit:     Commit,
		BuildDate:  Date,
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		Kubernetes: KubernetesClientVersion(),
	}
}

// KubernetesClientVersion is the Kubernetes release that the linked k8s.io/client-go belongs to:
// client-go v0.37.1 is Kubernetes v1.37.1. It is read from the binary's module list, so it can never
// disagree with what go.mod pins.
func KubernetesClientVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, dep := range bi.Deps {
		if dep.Path != "k8s.io/client-go" {
			continue
		}
		v := dep.Version
		if dep.Replace != nil && dep.Replace.Version != "" {
			v = dep.Replace.Version
		}
		if rest, ok := strings.CutPrefix(v, "v0."); ok {
			return "v1." + rest
		}
		return v
	}
	return ""
}
