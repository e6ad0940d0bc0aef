package simcluster

import (
	"fmt"
	"path/filepath"
)

// The configuration files of a real node: containerd's, the CNI network's, the kubelet's and
// kube-proxy's. Each node has its own directories, socket, cgroup root and kubelet ports, so that
// several run on one machine; what the kubelet would change on the machine itself (kernel tunables,
// iptables chains) it is kept from.

// containerdConfig is containerd's config.toml (version 3) for node n. Its OOM score adjustments
// never go below containerd's own (restrict_oom_score_adj): a root without CAP_SYS_RESOURCE (a
// sandboxed machine, this one among them) cannot lower them, and runc then fails every pod with
// "can't get final child's PID from pipe".
func (n *RealNode) containerdConfig() string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
temp = %[3]q
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt",
  "io.containerd.image-verifier.v1.bindir",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
]
required_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.overlayfs"]
[grpc]
  address = %[4]q
[ttrpc]
  address = %[5]q
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = %[6]q
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[7]q
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = %[8]q
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[9]q
        SystemdCgroup = false
        Root = %[10]q
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[11]q]
    conf_dir = %[12]q
    max_conf_num = 1
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = %[13]q
  stream_server_port = "%[14]d"
`, filepath.Join(n.dir, "containerd"), filepath.Join(n.run, "ctd"), filepath.Join(n.dir, "tmp"),
		n.socket(), n.socket()+".ttrpc", filepath.Join(n.run, "s"), pauseRef,
		filepath.Join(n.bin, "containerd-shim-runc-v2"), n.runc, filepath.Join(n.run, "runc"),
		filepath.Join(n.bin, "cni"), filepath.Join(n.dir, "cni", "net.d"), n.net.innerIP(), n.streamPort)
}

// cniConfig is the node's pod network: a bridge of its own in the shared namespace.
func (n *RealNode) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "drydock-%[1]s",
  "plugins": [{
    "type": "bridge",
    "bridge": "dd%[2]d",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %[3]q}]],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dataDir": %[4]q
    }
  }]
}
`, n.Name, n.Index, n.net.podSubnet(n.Index), filepath.Join(n.dir, "cni", "ipam"))
}

// kubeletConfig is the kubelet's configuration: its own ports on this side of the veth (the node's
// address: the apiserver reaches it there), its own cgroup root, log and
// plugin directories; no image garbage collection or disk eviction (the disk is the machine's);
// cgroup v1 allowed.
func (n *RealNode) kubeletConfig() string {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: unix://%[2]s
address: %[9]s
port: %[3]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[4]d
staticPodPath: %[5]s
podLogsDir: %[6]s
volumePluginDir: %[7]s
failSwapOn: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
resolvConf: %[8]s
clusterDomain: cluster.local
evictionHard: {nodefs.available: "0%%", nodefs.inodesFree: "0%%", imagefs.available: "0%%", imagefs.inodesFree: "0%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
protectKernelDefaults: true
makeIPTablesUtilChains: false
serializeImagePulls: false
`, n.cgroupRoot(), n.socket(), n.kubeletPort, n.kubeletPort+1, filepath.Join(n.dir, "manifests"),
		filepath.Join(n.dir, "pod-logs"), filepath.Join(n.dir, "volume-plugins"), filepath.Join(n.dir, "resolv.conf"), n.net.hostIP())
	if n.taint {
		cfg += fmt.Sprintf("registerWithTaints: [{key: %q, value: \"true\", effect: NoSchedule}]\n", RealNodeTaint)
	}
	return cfg
}

// kubeProxyConfig is kube-proxy's configuration in the namespace (iptables, touching no sysctl of
// the machine: conntrack left as the kernel has it).
func (n realNet) kubeProxyConfig(kubeconfig, node string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
bindAddress: 0.0.0.0
clusterCIDR: %s
detectLocalMode: ClusterCIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables: {localhostNodePorts: false}
`, kubeconfig, node, n.podCIDR())
}

// kernelTunables are the values the kubelet insists on (protectKernelDefaults): the node's mount
// namespace sees them in files bound over /proc/sys, so the machine's own are neither read nor set.
var kernelTunables = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}
