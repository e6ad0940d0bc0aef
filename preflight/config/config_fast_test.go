package config

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/drydock-dev/drydock/preflight/apis"
)

func TestGeneratedReleases(t *testing.T) {
	if len(Generated) != 2 || Generated[0].Release().Minor+1 != Generated[1].Release().Minor || Generated[1].Release() != apis.Pinned {
		t.Fatalf("generated releases: %v and %v; want the previous minor and the pinned %s", Generated[0].Kubernetes, Generated[1].Kubernetes, apis.Pinned)
	}
	for _, g := range Generated {
		if len(g.Gates) < 100 {
			t.Errorf("%s: only %d gates", g.Kubernetes, len(g.Gates))
		}
	}
}

func TestJudgeGate(t *testing.T) {
	for _, tc := range []struct {
		gate   string
		value  bool
		target int
		err    bool
		has    string // "" = no problem
	}{
		{"SidecarContainers", true, 37, true, "is removed in 1.37"},
		{"SidecarContainers", true, 36, false, "locked to its default from 1.36"},
		{"SidecarContainers", true, 38, false, "not known to Kubernetes v1.37.1"},
		{"CPUManagerPolicyOptions", false, 37, true, "locked to true in 1.37"},
		{"CPUManagerPolicyOptions", true, 37, false, "the setting does nothing"},
		{"CPUManagerPolicyOptions", true, 38, false, "in v1.37.1, so it may be gone in 1.38"},
		{"StorageNamespaceIndex", false, 37, false, "deprecated in 1.37"},
		{"NoSuchGate", true, 37, true, "not a gate of Kubernetes 1.37"},
		{"APIServerIdentity", true, 37, false, ""},
		{"SidecarContainers", true, 20, false, ""}, // older than anything generated: not judged
	} {
		p, ok := JudgeGate(tc.gate, tc.value, r(tc.target))
		if tc.has == "" {
			if ok {
				t.Errorf("%s=%v at 1.%d: %+v, want nothing", tc.gate, tc.value, tc.target, p)
			}
			continue
		}
		if !ok || p.Error != tc.err || !strings.Contains(p.Message, tc.has) || p.Fix == "" || !strings.HasPrefix(p.Source, "https://") {
			t.Errorf("%s=%v at 1.%d: %v %+v, want error %v with %q", tc.gate, tc.value, tc.target, ok, p, tc.err, tc.has)
		}
	}
}

func TestJudgeFlag(t *testing.T) {
	if p, ok := JudgeFlag("kube-controller-manager", "--concurrent-service-syncs", r(36), r(37)); !ok || !p.Error || !strings.Contains(p.Message, "removed in 1.37") {
		t.Errorf("concurrent-service-syncs: %v %+v", ok, p)
	}
	if _, ok := JudgeFlag("kube-controller-manager", "concurrent-service-syncs", r(35), r(36)); ok {
		t.Error("a flag removed in 1.37 is judged for a 1.36 target")
	}
	if _, ok := JudgeFlag("kube-apiserver", "concurrent-service-syncs", r(36), r(37)); ok {
		t.Error("a flag of another component is judged")
	}
	if p, ok := JudgeFlag("kubelet", "containerd", r(36), r(37)); !ok || !strings.Contains(p.Message, "cAdvisor") {
		t.Errorf("kubelet --containerd: %v %+v", ok, p)
	}
}

// TestHandKeptLinesHaveSources refuses a removed flag, kubeadm API or volume plugin line without a
// source.
func TestHandKeptLinesHaveSources(t *testing.T) {
	for _, f := range append(append([]RemovedFlag{}, RemovedFlags...), KubeadmGates...) {
		if !strings.HasPrefix(f.Source, "https://") || f.Removed.IsZero() {
			t.Errorf("%s --%s: needs a source and the release that removed it", f.Component, f.Flag)
		}
	}
	for _, a := range KubeadmAPIs {
		if !strings.HasPrefix(a.Source, "https://") || a.Removed.IsZero() || a.Fix == "" {
			t.Errorf("kubeadm %s: needs a source, a release and a fix", a.APIVersion)
		}
	}
	for _, g := range GonePlugins {
		if !strings.HasPrefix(g.Source, "https://") {
			t.Errorf("volume plugin %s: no source", g.Field)
		}
	}
}

func TestVolumes(t *testing.T) {
	pv := &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{CephFS: &corev1.CephFSPersistentVolumeSource{Monitors: []string{"m"}}}}}
	if u, ok := PVUse(pv); !ok || u.Gone == nil || u.Gone.Field != "cephfs" {
		t.Errorf("cephfs PV: %v %+v", ok, u)
	}
	pv = &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{AWSElasticBlockStore: &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "vol-1"}}}}
	if u, ok := PVUse(pv); !ok || u.CSIDriver != "ebs.csi.aws.com" {
		t.Errorf("EBS PV: %v %+v", ok, u)
	}
	v := &corev1.Volume{Name: "src", VolumeSource: corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{Repository: "https://x"}}}
	if u, ok := InlineUse(v); !ok || !u.GitRepo {
		t.Errorf("gitRepo: %v %+v", ok, u)
	}
	if served, _ := GitRepoServed(r(37)); served {
		t.Error("gitRepo served in 1.37, where its gate is locked off")
	}
	if served, _ := GitRepoServed(r(35)); !served {
		t.Error("gitRepo not served in 1.35")
	}
	v = &corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	if u, ok := InlineUse(v); ok {
		t.Errorf("emptyDir: %+v", u)
	}
}
