package simcluster

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// TestRealNodeConfigs: the kubelet's and kube-proxy's configurations decode strictly into their
// own API types (a misspelt field is an error there, silently ignored by the kubelet), with what
// keeps two nodes apart and the machine untouched; containerd's is valid TOML with the settings a
// typo would silently drop (containerd only warns about unknown keys).
func TestRealNodeConfigs(t *testing.T) {
	t.Parallel()
	n := &RealNode{Name: "real-1", Index: 1, net: &realNet{Index: 3}, bin: "/bin", runc: "/usr/sbin/runc",
		dir: "/work/nodes/real-1", run: "/run/drydock/3-1", kubeletPort: 41000, streamPort: 10011}

	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict([]byte(n.kubeletConfig()), &kc); err != nil {
		t.Fatalf("kubelet configuration: %v\n%s", err, n.kubeletConfig())
	}
	if kc.FailCgroupV1 == nil || *kc.FailCgroupV1 || kc.CgroupRoot != "/drydock-3/real-1/pods" || kc.PodLogsDir != "/work/nodes/real-1/pod-logs" ||
		kc.Port != 41000 || kc.Address != "10.250.3.1" || kc.ProtectKernelDefaults != true || kc.MakeIPTablesUtilChains == nil || *kc.MakeIPTablesUtilChains {
		t.Errorf("kubelet configuration: %+v", kc)
	}
	n.taint = true
	kc = kubeletv1beta1.KubeletConfiguration{}
	if err := yaml.UnmarshalStrict([]byte(n.kubeletConfig()), &kc); err != nil || len(kc.RegisterWithTaints) != 1 ||
		kc.RegisterWithTaints[0].Key != RealNodeTaint || kc.RegisterWithTaints[0].Effect != "NoSchedule" {
		t.Errorf("a tainted node's kubelet configuration: %v %+v", err, kc.RegisterWithTaints)
	}
	n.taint = false

	var kp kubeproxyv1alpha1.KubeProxyConfiguration
	if err := yaml.UnmarshalStrict([]byte(n.net.kubeProxyConfig("/k", "real-1")), &kp); err != nil {
		t.Fatalf("kube-proxy configuration: %v", err)
	}
	if kp.Conntrack.MaxPerCore == nil || *kp.Conntrack.MaxPerCore != 0 || kp.ClusterCIDR != "10.244.12.0/22" || kp.HostnameOverride != "real-1" {
		t.Errorf("kube-proxy configuration: %+v", kp)
	}

	var cd map[string]any
	if _, err := toml.Decode(n.containerdConfig(), &cd); err != nil {
		t.Fatalf("containerd configuration: %v\n%s", err, n.containerdConfig())
	}
	b, _ := json.Marshal(cd)
	for _, want := range []string{`"restrict_oom_score_adj":true`, `"socket_dir":"/run/drydock/3-1/s"`, `"netns_mounts_under_state_dir":true`,
		`"sandbox":"drydock.local/pause:1"`, `"bin_dirs":["/bin/cni"]`, `"BinaryName":"/usr/sbin/runc"`, `"stream_server_address":"10.250.3.2"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("containerd configuration lacks %s", want)
		}
	}

	var cni struct {
		Plugins []struct {
			Bridge string `json:"bridge"`
			IPAM   struct {
				Ranges [][]struct{ Subnet string } `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(n.cniConfig()), &cni); err != nil || len(cni.Plugins) != 1 ||
		cni.Plugins[0].Bridge != "dd1" || cni.Plugins[0].IPAM.Ranges[0][0].Subnet != "10.244.13.0/24" {
		t.Errorf("CNI configuration: %+v, %v", cni, err)
	}
}
