package config

import (
	"fmt"
	"strings"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// RemovedFlag is a command-line flag a Kubernetes release no longer accepts: the component refuses
// to start with it.
type RemovedFlag struct {
	Component string // kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
	Flag      string // without the dashes
	Removed   apis.Release
	Note      string
	Source    string
}

const (
	cadvisorLib = "https://github.com/kubernetes/kubernetes/pull/139870 (CHANGELOG-1.37: the kubelet's cAdvisor flags are no longer accepted)"
)

// RemovedFlags is hand-kept, a source per line. The 1.37 lines were checked against the `--help` of
// the 1.36.3 and 1.37.1 binaries drydock's simulated clusters run (kube-apiserver and kube-scheduler
// lost none) and CHANGELOG-1.37.
var RemovedFlags = append([]RemovedFlag{
	{Component: "kube-controller-manager", Flag: "concurrent-service-syncs", Removed: r(37), Note: "a no-op since 1.31", Source: "https://github.com/kubernetes/kubernetes/pull/138002"},
	{Component: "kubelet", Flag: "pod-infra-container-image", Removed: r(35), Note: "the container runtime chooses the sandbox (pause) image", Source: "https://github.com/kubernetes/kubernetes/pull/135807 (CHANGELOG-1.36: its cleanup \"was necessary when upgrading to v1.35\")"},
}, cadvisorFlags()...)

func cadvisorFlags() []RemovedFlag {
	var out []RemovedFlag
	for _, f := range []string{"application-metrics-count-limit", "boot-id-file", "container-hints", "containerd", "containerd-namespace",
		"enable-load-reader", "event-storage-age-limit", "event-storage-event-limit", "global-housekeeping-interval", "log-cadvisor-usage",
		"machine-id-file", "storage-driver-user", "storage-driver-password", "storage-driver-host", "storage-driver-db",
		"storage-driver-table", "storage-driver-secure", "storage-driver-buffer-duration"} {
		out = append(out, RemovedFlag{Component: "kubelet", Flag: f, Removed: r(37), Note: "a cAdvisor flag (only --housekeeping-interval is kept)", Source: cadvisorLib})
	}
	return out
}

func r(minor int) apis.Release { return apis.Release{Major: 1, Minor: minor} }

// JudgeFlag says whether target (or a release between current and target) removed flag of
// component: the component refuses to start with it.
func JudgeFlag(component, flag string, current, target apis.Release) (Problem, bool) {
	flag = strings.TrimLeft(flag, "-")
	for _, f := range RemovedFlags {
		if f.Component != component || f.Flag != flag || !f.Removed.AtOrBefore(target) {
			continue
		}
		if !current.IsZero() && f.Removed.AtOrBefore(current) {
			continue // gone already: the component could not have started with it (the flag is set elsewhere)
		}
		return Problem{Error: true, Message: fmt.Sprintf("%s --%s is removed in %s (%s): the component refuses to start with it", component, flag, f.Removed, f.Note),
			Fix: fmt.Sprintf("remove --%s from %s's flags as you upgrade it (kubeadm: extraArgs in ClusterConfiguration, or kubeadm-flags.env for the kubelet)", flag, component), Source: f.Source}, true
	}
	return Problem{}, false
}

// KubeadmAPI is a kubeadm configuration API version a release no longer reads.
type KubeadmAPI struct {
	APIVersion string
	Removed    apis.Release
	Fix        string
	Source     string
}

// KubeadmAPIs lists them, a source per line.
var KubeadmAPIs = []KubeadmAPI{
	{APIVersion: "kubeadm.k8s.io/v1beta3", Removed: r(37), Fix: "migrate it to kubeadm.k8s.io/v1beta4 with `kubeadm config migrate` (a v1.35 or v1.36 kubeadm) and upload it before the upgrade",
		Source: "https://github.com/kubernetes/kubernetes/pull/136016"},
}

// KubeadmGates are kubeadm's own feature gates a release removes.
var KubeadmGates = []RemovedFlag{
	{Component: "kubeadm", Flag: "PublicKeysECDSA", Removed: r(37), Note: "ECDSA keys are ClusterConfiguration.encryptionAlgorithm in v1beta4", Source: "https://github.com/kubernetes/kubernetes/pull/136016"},
}
