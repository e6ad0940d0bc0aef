package preflight

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

func readyNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// TestConfigCheck: flags and feature gates the target removes or locks, from a kubeadm static pod,
// kubeadm's ClusterConfiguration (v1beta3, which 1.37 no longer reads) and KubeletConfiguration,
// and each kubelet's configz (one finding for the nodes that share a problem; the nodes that do not
// answer are something not checked); volumes whose plugin is gone or whose CSI driver is missing;
// only reads.
func TestConfigCheck(t *testing.T) { //nolint:paralleltest // replaces readConfigz
	ebs := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-ebs"}, Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{AWSElasticBlockStore: &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "vol-1"}}}}
	gce := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-gce"}, Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "d"}}}}
	ceph := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-ceph"}, Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{RBD: &corev1.RBDPersistentVolumeSource{CephMonitors: []string{"m"}, RBDImage: "i"}}}}
	gitPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "docs", Name: "site-1", OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "site-5d8f", Controller: boolPtr(true)}}},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "src", VolumeSource: corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{Repository: "https://x"}}}}}}
	gitPod2 := gitPod.DeepCopy()
	gitPod2.Name = "site-2"
	apiserver := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-controller-manager-cp1", Labels: map[string]string{"component": "kube-controller-manager", "tier": "control-plane"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-controller-manager", Command: []string{"kube-controller-manager", "--concurrent-service-syncs=5", "--feature-gates=SidecarContainers=true,CPUManagerPolicyOptions=false", "--leader-elect", "true"}}}}}
	kubeadm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"}, Data: map[string]string{"ClusterConfiguration": `apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
featureGates: {PublicKeysECDSA: true}
apiServer:
  extraArgs:
    feature-gates: StorageNamespaceIndex=false
`}}
	kubelet := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubelet-config"}, Data: map[string]string{"kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfeatureGates:\n  NoSuchGate: true\n"}}
	client := fake.NewClientset(ebs, gce, ceph, gitPod, gitPod2, apiserver, kubeadm, kubelet, readyNode("n1"), readyNode("n2"), readyNode("n3"), readyNode("n4"),
		&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "pd.csi.storage.gke.io"}})
	old := readConfigz
	defer func() { readConfigz = old }()
	readConfigz = func(_ context.Context, _ *Input, node string) (map[string]bool, error) {
		switch node {
		case "n1", "n2":
			return map[string]bool{"SidecarContainers": true}, nil
		case "n3":
			return nil, apierrors.NewServiceUnavailable("kubelet is not answering")
		}
		return map[string]bool{}, nil
	}
	in := &Input{Kube: client, Server: apis.Release{Major: 1, Minor: 36}, Target: apis.Release{Major: 1, Minor: 37}}
	rep, err := Run(context.Background(), in, []string{"config-check"})
	if err != nil {
		t.Fatal(err)
	}
	got := rep.Findings()
	for _, w := range []struct {
		sev            runbook.Severity
		object, source string
		has            string
	}{
		{runbook.SeverityError, "Pod kube-system/kube-controller-manager-cp1", SourceStaticPod, "kube-controller-manager --concurrent-service-syncs is removed in 1.37"},
		{runbook.SeverityError, "Pod kube-system/kube-controller-manager-cp1", SourceStaticPod, "kube-controller-manager: feature gate SidecarContainers=true is not a gate of Kubernetes 1.37 (it is removed in 1.37)"},
		{runbook.SeverityError, "Pod kube-system/kube-controller-manager-cp1", SourceStaticPod, "CPUManagerPolicyOptions=false is locked to true in 1.37"},
		{runbook.SeverityError, "ConfigMap kube-system/kubeadm-config", SourceKubeadmConfig, "ClusterConfiguration is kubeadm.k8s.io/v1beta3, which kubeadm 1.37 no longer reads"},
		{runbook.SeverityError, "ConfigMap kube-system/kubeadm-config", SourceKubeadmConfig, "kubeadm feature gate PublicKeysECDSA is removed in 1.37"},
		{runbook.SeverityWarning, "ConfigMap kube-system/kubeadm-config", SourceKubeadmConfig, "kube-apiserver: feature gate StorageNamespaceIndex=false is deprecated in 1.37"},
		{runbook.SeverityError, "ConfigMap kube-system/kubelet-config", SourceKubeletConfig, "kubelet: feature gate NoSuchGate=true is not a gate of Kubernetes 1.37"},
		{runbook.SeverityError, "Node n1", SourceConfigz, "kubelet on 2 nodes (n1, n2): feature gate SidecarContainers=true"},
		{runbook.SeverityInfo, "Node n3", SourceConfigz, "could not read the kubelet configuration (configz) of node n3"},
		{runbook.SeverityError, "PersistentVolume pv-ebs", SourceVolume, "serves only through CSI migration to ebs.csi.aws.com, and that CSI driver is not installed"},
		{runbook.SeverityError, "PersistentVolume pv-ceph", SourceVolume, "in-tree rbd volume plugin, which 1.37 does not have (removed in 1.31)"},
		{runbook.SeverityError, "ReplicaSet docs/site-5d8f", SourceVolume, "uses a gitRepo volume, which 1.37 no longer mounts"},
	} {
		found := false
		for _, f := range got {
			if f.Severity == w.sev && f.Object == w.object && f.Source == w.source && strings.Contains(f.Message, w.has) && f.Fix != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %s %s [%s] %q", w.sev, w.object, w.source, w.has)
		}
	}
	for _, f := range got {
		if strings.Contains(f.Object, "pv-gce") || strings.Contains(f.Message, "site-2") || f.Object == "Node n4" {
			t.Errorf("negative control flagged: %s %s: %s", f.Severity, f.Object, f.Message)
		}
		if f.CouldNotCheck == "" && !strings.HasPrefix(f.Reference, "https://") {
			t.Errorf("no reference for %s: %s", f.Object, f.Message)
		}
	}
	if cnc := CouldNot(got); len(cnc) != 1 || cnc[0].CouldNotCheck != CouldNotUnavailable {
		t.Errorf("could not check: %+v", cnc)
	}
	for _, a := range client.Actions() {
		if v := a.GetVerb(); v != "list" && v != "get" {
			t.Errorf("config-check did %s %s: it must only read", v, a.GetResource().Resource)
		}
	}
}

// TestConfigCheckForbiddenConfigz: a user without nodes/proxy is told which permission to grant.
func TestConfigCheckForbiddenConfigz(t *testing.T) { //nolint:paralleltest // replaces readConfigz
	client := fake.NewClientset(readyNode("n1"))
	old := readConfigz
	defer func() { readConfigz = old }()
	readConfigz = func(context.Context, *Input, string) (map[string]bool, error) {
		return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes/proxy"}, "n1", errors.New("no"))
	}
	in := &Input{Kube: client, Server: apis.Release{Major: 1, Minor: 36}, Target: apis.Release{Major: 1, Minor: 37}}
	rep, err := Run(context.Background(), in, []string{"config-check"})
	if err != nil {
		t.Fatal(err)
	}
	cnc := CouldNot(rep.Findings())
	if len(cnc) != 1 || !cnc[0].NotAllowed || !strings.Contains(cnc[0].Fix, "nodes/proxy") {
		t.Errorf("could not check: %+v", cnc)
	}
}

func boolPtr(b bool) *bool { return &b }

// TestRemovedFlagsPerComponent: each control-plane component's static pod, at the pinned minors
// (where only kube-controller-manager lost a flag) and past them (1.38, which drydock's removed-flag
// table does not cover: said once per component, never passed in silence).
func TestRemovedFlagsPerComponent(t *testing.T) {
	t.Parallel()
	staticPod := func(component string, flags ...string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: component + "-cp1", Labels: map[string]string{"component": component, "tier": "control-plane"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: component, Command: append([]string{component}, flags...)}}}}
	}
	for _, tc := range []struct {
		name           string
		pod            *corev1.Pod
		server, target int
		sev            runbook.Severity
		has            string // "" = no flag finding at all
	}{
		{"kube-controller-manager 1.37", staticPod("kube-controller-manager", "--concurrent-service-syncs=5", "--leader-elect=true"), 36, 37, runbook.SeverityError, "kube-controller-manager --concurrent-service-syncs is removed in 1.37"},
		{"kube-controller-manager already past it", staticPod("kube-controller-manager", "--concurrent-service-syncs=5"), 37, 37, "", ""},
		{"kube-apiserver 1.37", staticPod("kube-apiserver", "--etcd-servers=https://127.0.0.1:2379", "--enable-logs-handler=false"), 36, 37, "", ""},
		{"kube-scheduler 1.37", staticPod("kube-scheduler", "--leader-elect=true", "--bind-address=127.0.0.1"), 35, 37, "", ""},
		{"kube-apiserver 1.38", staticPod("kube-apiserver", "--etcd-servers=https://127.0.0.1:2379"), 37, 38, runbook.SeverityInfo, "does not cover kube-apiserver 1.38"},
		{"kube-controller-manager 1.38", staticPod("kube-controller-manager", "--leader-elect=true"), 37, 38, runbook.SeverityInfo, "does not cover kube-controller-manager 1.38"},
		{"kube-scheduler 1.38", staticPod("kube-scheduler", "--leader-elect=true"), 36, 38, runbook.SeverityInfo, "does not cover kube-scheduler 1.38"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset(tc.pod)
			in := &Input{Kube: client, Server: apis.Release{Major: 1, Minor: tc.server}, Target: apis.Release{Major: 1, Minor: tc.target}}
			fs, err := checkConfig(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			var flagFindings []Finding
			for _, f := range fs {
				if strings.Contains(f.Message, "--") || strings.Contains(f.Message, "removed flags") {
					flagFindings = append(flagFindings, f)
				}
			}
			if tc.has == "" {
				if len(flagFindings) != 0 {
					t.Errorf("want no flag finding, got %+v", flagFindings)
				}
				return
			}
			if len(flagFindings) != 1 || flagFindings[0].Severity != tc.sev || !strings.Contains(flagFindings[0].Message, tc.has) || flagFindings[0].Fix == "" || !strings.HasPrefix(flagFindings[0].Reference, "https://") {
				t.Errorf("want one %s finding saying %q with a fix and a reference, got %+v", tc.sev, tc.has, flagFindings)
			}
			for _, a := range client.Actions() {
				if v := a.GetVerb(); v != "list" && v != "get" {
					t.Errorf("config-check did %s %s: it must only read", v, a.GetResource().Resource)
				}
			}
		})
	}
}
