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

// RemovedFlags is hand-kept, a source per line. The control plane's 1.37 lines are checked against
// the `--help` of the 1.36.3 and 1.37.1 binaries drydock's simulated clusters run (kube-apiserver and
// kube-scheduler lost none) by TestRemovedFlagsMatchTheBinaries; 1.36 removed none of the control
// plane's (CHANGELOG-1.36). FlagsChecked says which releases the table covers in full.
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

// FlagRelease says that RemovedFlags holds every flag a release removed from a component (often
// none), and where that comes from.
type FlagRelease struct {
	Component string
	Release   apis.Release
	Source    string
}

const (
	changelog136 = "https://github.com/kubernetes/kubernetes/blob/v1.36.3/CHANGELOG/CHANGELOG-1.36.md (v1.36.0: no flag of this component removed)"
	helpDiff137  = "https://github.com/kubernetes/kubernetes/blob/v1.37.1/CHANGELOG/CHANGELOG-1.37.md, and the --help of the v1.36.3 and v1.37.1 binaries (TestRemovedFlagsMatchTheBinaries)"
)

// FlagsChecked lists the releases whose removed flags RemovedFlags holds in full, for the control
// plane's components (the flags config-check reads): both pinned minors. A release after these is
// not known, and config-check says so instead of passing the flags.
var FlagsChecked = []FlagRelease{
	{Component: "kube-apiserver", Release: r(36), Source: changelog136},
	{Component: "kube-controller-manager", Release: r(36), Source: changelog136},
	{Component: "kube-scheduler", Release: r(36), Source: changelog136},
	{Component: "kube-apiserver", Release: r(37), Source: helpDiff137},
	{Component: "kube-controller-manager", Release: r(37), Source: helpDiff137},
	{Component: "kube-scheduler", Release: r(37), Source: helpDiff137},
}

// UncheckedFlagReleases lists the releases after current up to target whose removed flags of
// component drydock does not know (current zero: the target alone).
func UncheckedFlagReleases(component string, current, target apis.Release) []apis.Release {
	from := target.Minor
	if !current.IsZero() && current.Major == target.Major {
		from = current.Minor + 1
	}
	var out []apis.Release
	for m := from; m <= target.Minor; m++ {
		known := false
		for _, c := range FlagsChecked {
			known = known || c.Component == component && c.Release == (apis.Release{Major: target.Major, Minor: m})
		}
		if !known {
			out = append(out, apis.Release{Major: target.Major, Minor: m})
		}
	}
	return out
}

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
