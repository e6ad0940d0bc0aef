package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/preflight/config"
	"github.com/drydock-dev/drydock/runbook"
)

// Where a configuration finding's setting was read.
const (
	SourceStaticPod     = "static-pod"
	SourceKubeadmConfig = "kubeadm-config"
	SourceKubeletConfig = "kubelet-config"
	SourceConfigz       = "configz"
	SourceVolume        = "volume"
)

// controlPlaneComponents are the components whose static pods the check reads (kubeadm's `component` label).
var controlPlaneComponents = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// configzTimeout bounds one kubelet's /configz through the apiserver's node proxy; configzParallel
// how many are read at once.
var (
	configzTimeout  = 5 * time.Second
	configzParallel = 8
)

// checkConfig finds the configuration the target breaks: flags it removes and feature gates it
// removes or locks, in the control plane's static pods, in kubeadm's ClusterConfiguration and
// KubeletConfiguration, and in each kubelet's running configuration (configz); kubeadm
// configuration it no longer reads; and volumes whose in-tree plugin it no longer serves.
func checkConfig(ctx context.Context, in *Input) ([]Finding, error) {
	// Four independent reads, at once (a cluster far away costs the round trips of the longest),
	// each with its own findings, joined in this order.
	parts := []func(c *configFindings){
		func(c *configFindings) { staticPods(ctx, in, c) },
		func(c *configFindings) { c.out = append(c.out, kubeadmConfig(ctx, in, c.add, c.judgeFlags)...) },
		func(c *configFindings) { c.out = append(c.out, kubeletConfigz(ctx, in, c.add)...) },
		func(c *configFindings) { c.out = append(c.out, volumes(ctx, in)...) },
	}
	found := make([]configFindings, len(parts))
	read := &flagsRead{components: map[string]bool{}}
	var wg sync.WaitGroup
	for i, part := range parts {
		found[i].in, found[i].read = in, read
		wg.Add(1)
		go func() {
			defer wg.Done()
			part(&found[i])
		}()
	}
	wg.Wait()
	var out []Finding
	for _, c := range found {
		out = append(out, c.out...)
	}
	return append(out, read.unchecked(in)...), nil
}

// configFindings collects what one part of config-check finds.
type configFindings struct {
	in   *Input
	out  []Finding
	read *flagsRead
}

// flagsRead are the components whose flags config-check read, from any part.
type flagsRead struct {
	mu         sync.Mutex
	components map[string]bool
}

// unchecked says, once per component whose flags were read, which releases up to the target
// drydock's removed-flag table does not cover: those flags were not checked, and the report says so
// rather than pass them.
func (r *flagsRead) unchecked(in *Input) []Finding {
	var out []Finding
	for _, component := range controlPlaneComponents {
		if !r.components[component] {
			continue
		}
		rels := config.UncheckedFlagReleases(component, in.Server, in.Target)
		if len(rels) == 0 {
			continue
		}
		names := make([]string, len(rels))
		for i, rel := range rels {
			names[i] = rel.String()
		}
		out = append(out, Finding{Severity: runbook.SeverityInfo, Object: component + " flags",
			Message:   fmt.Sprintf("drydock's table of removed flags does not cover %s %s, so %s's flags were not checked for flags %s removes", component, strings.Join(names, ", "), component, strings.Join(names, ", ")),
			Fix:       fmt.Sprintf("read the removals in CHANGELOG-%s (Urgent Upgrade Notes, Deprecation) for %s's flags before the upgrade", names[len(names)-1], component),
			Reference: "https://github.com/kubernetes/kubernetes/tree/master/CHANGELOG"})
	}
	return out
}

func (c *configFindings) add(f Finding, p config.Problem) {
	f.Severity = runbook.SeverityWarning
	if p.Error {
		f.Severity = runbook.SeverityError
	}
	f.Message, f.Fix, f.Reference = p.Message, p.Fix, p.Source
	c.out = append(c.out, f)
}

func (c *configFindings) judgeFlags(f Finding, component string, flags map[string]string) {
	if len(flags) > 0 && c.read != nil {
		c.read.mu.Lock()
		c.read.components[component] = true
		c.read.mu.Unlock()
	}
	for _, name := range sortedKeys(flags) {
		if p, ok := config.JudgeFlag(component, name, c.in.Server, c.in.Target); ok {
			c.add(f, p)
		}
		if name == "feature-gates" {
			gates, bad := config.ParseFeatureGates(flags[name])
			for _, g := range config.SortedGates(gates) {
				if p, ok := config.JudgeGate(g, gates[g], c.in.Target); ok {
					p.Message = component + ": " + p.Message
					c.add(f, p)
				}
			}
			for _, b := range bad {
				c.add(f, config.Problem{Error: true, Message: fmt.Sprintf("%s: --feature-gates holds %q, which is not Name=true|false", component, b), Fix: "correct the feature gate setting"})
			}
		}
	}
}

// staticPods judges the flags of the control plane's static pods, as kubeadm lays them out (mirror
// pods in kube-system, labelled component=NAME), read in one list.
func staticPods(ctx context.Context, in *Input, c *configFindings) {
	selector := "component in (" + strings.Join(controlPlaneComponents, ",") + ")"
	pods, err := in.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		c.out = append(c.out, couldNotCheck("Pods kube-system "+selector, "could not read the control plane's static pods, so their flags were not checked", err))
		return
	}
	for _, name := range controlPlaneComponents {
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Labels["component"] != name {
				continue
			}
			for _, ct := range p.Spec.Containers {
				if ct.Name != name && len(p.Spec.Containers) > 1 {
					continue
				}
				c.judgeFlags(Finding{ObjectRef: Ref("Pod", p.Namespace, p.Name), Source: SourceStaticPod}, name, parseFlags(append(append([]string{}, ct.Command...), ct.Args...)))
			}
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseFlags reads --name=value and --name value from a command line (the binary and positional
// arguments are ignored; a flag without a value is "true").
func parseFlags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			val = "true"
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				val = args[i+1]
				i++
			}
		}
		out[name] = val
	}
	return out
}

// kubeadmClusterConfig is the part of kubeadm's ClusterConfiguration the check reads: v1beta3's
// extraArgs are a map, v1beta4's a list of name/value.
type kubeadmClusterConfig struct {
	APIVersion        string          `json:"apiVersion"`
	FeatureGates      map[string]bool `json:"featureGates"`
	APIServer         kubeadmControl  `json:"apiServer"`
	ControllerManager kubeadmControl  `json:"controllerManager"`
	Scheduler         kubeadmControl  `json:"scheduler"`
}

type kubeadmControl struct {
	ExtraArgs json.RawMessage `json:"extraArgs"`
}

func (c kubeadmControl) args() map[string]string {
	out := map[string]string{}
	if len(c.ExtraArgs) == 0 {
		return out
	}
	if json.Unmarshal(c.ExtraArgs, &out) == nil {
		return out
	}
	var list []struct{ Name, Value string }
	if json.Unmarshal(c.ExtraArgs, &list) == nil {
		for _, a := range list {
			out[a.Name] = a.Value
		}
	}
	return out
}

func kubeadmConfig(ctx context.Context, in *Input, add func(Finding, config.Problem), judgeFlags func(Finding, string, map[string]string)) []Finding {
	var out []Finding
	cm, err := in.Kube.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// Not a kubeadm cluster: nothing to read.
	case err != nil:
		out = append(out, couldNotCheck("ConfigMap kube-system/kubeadm-config", "could not read kubeadm's ClusterConfiguration", err))
	default:
		f := Finding{ObjectRef: Ref("ConfigMap", "kube-system", "kubeadm-config"), Source: SourceKubeadmConfig}
		var cc kubeadmClusterConfig
		if err := yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &cc); err != nil {
			add(f, config.Problem{Message: "ClusterConfiguration is not valid YAML: " + err.Error(), Fix: "kubectl -n kube-system get configmap kubeadm-config -o yaml"})
			break
		}
		for _, a := range config.KubeadmAPIs {
			if a.APIVersion == cc.APIVersion && a.Removed.AtOrBefore(in.Target) {
				add(f, config.Problem{Error: true, Message: fmt.Sprintf("ClusterConfiguration is %s, which kubeadm %s no longer reads", a.APIVersion, a.Removed), Fix: a.Fix, Source: a.Source})
			}
		}
		for _, g := range config.SortedGates(cc.FeatureGates) {
			for _, kg := range config.KubeadmGates {
				if kg.Flag == g && kg.Removed.AtOrBefore(in.Target) {
					add(f, config.Problem{Error: true, Message: fmt.Sprintf("kubeadm feature gate %s is removed in %s (%s): kubeadm refuses the configuration", g, kg.Removed, kg.Note),
						Fix: "remove it from ClusterConfiguration.featureGates", Source: kg.Source})
				}
			}
		}
		judgeFlags(f, "kube-apiserver", cc.APIServer.args())
		judgeFlags(f, "kube-controller-manager", cc.ControllerManager.args())
		judgeFlags(f, "kube-scheduler", cc.Scheduler.args())
	}

	kc, err := in.Kube.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubelet-config", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		out = append(out, couldNotCheck("ConfigMap kube-system/kubelet-config", "could not read kubeadm's KubeletConfiguration", err))
	default:
		f := Finding{ObjectRef: Ref("ConfigMap", "kube-system", "kubelet-config"), Source: SourceKubeletConfig}
		var c struct {
			FeatureGates map[string]bool `json:"featureGates"`
		}
		if err := yaml.Unmarshal([]byte(kc.Data["kubelet"]), &c); err != nil {
			add(f, config.Problem{Message: "KubeletConfiguration is not valid YAML: " + err.Error(), Fix: "kubectl -n kube-system get configmap kubelet-config -o yaml"})
			break
		}
		for _, g := range config.SortedGates(c.FeatureGates) {
			if p, ok := config.JudgeGate(g, c.FeatureGates[g], in.Target); ok {
				p.Message = "kubelet: " + p.Message
				add(f, p)
			}
		}
	}
	return out
}

// kubeletConfigz reads each Ready node's running kubelet configuration through the apiserver's
// node proxy and judges its feature gates. A problem shared by several nodes is one finding that
// names them; nodes whose configz could not be read are one could-not-check finding per reason.
func kubeletConfigz(ctx context.Context, in *Input, add func(Finding, config.Problem)) []Finding {
	nodes, err := in.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Finding{couldNotCheck("Nodes", "could not list nodes, so the kubelets' configuration was not checked", err)}
	}
	type result struct {
		node  string
		gates map[string]bool
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		sem     = make(chan struct{}, configzParallel)
	)
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !kube.NodeReady(n) {
			continue // health-check reports it; a NotReady kubelet does not answer
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			gates, err := readConfigz(ctx, in, n.Name)
			mu.Lock()
			results = append(results, result{n.Name, gates, err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].node < results[j].node })

	var out []Finding
	type group struct {
		p     config.Problem
		nodes []string
	}
	problems := map[string]*group{}
	var order []string
	failed := map[string][]string{} // reason → nodes
	var failedErr = map[string]error{}
	for _, r := range results {
		if r.err != nil {
			cnc := couldNotCheck("", "", r.err)
			failed[cnc.CouldNotCheck] = append(failed[cnc.CouldNotCheck], r.node)
			failedErr[cnc.CouldNotCheck] = r.err
			continue
		}
		for _, g := range config.SortedGates(r.gates) {
			p, ok := config.JudgeGate(g, r.gates[g], in.Target)
			if !ok {
				continue
			}
			if problems[p.Message] == nil {
				problems[p.Message] = &group{p: p}
				order = append(order, p.Message)
			}
			problems[p.Message].nodes = append(problems[p.Message].nodes, r.node)
		}
	}
	for _, m := range order {
		g := problems[m]
		g.p.Message = "kubelet on " + nodeList(g.nodes) + ": " + g.p.Message
		add(Finding{ObjectRef: Ref("Node", "", g.nodes[0]), Source: SourceConfigz}, g.p)
	}
	reasons := make([]string, 0, len(failed))
	for r := range failed {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		ns := failed[r]
		f := couldNotCheck("Node "+ns[0], fmt.Sprintf("could not read the kubelet configuration (configz) of %s, so its feature gates were not checked", nodeList(ns)), failedErr[r])
		f.ObjectRef, f.Object, f.Source = Ref("Node", "", ns[0]), "", SourceConfigz
		if r != CouldNotForbidden {
			f.Severity = runbook.SeverityInfo
			f.Fix = "the kubelet's /configz must be reachable through the apiserver (kubectl get --raw /api/v1/nodes/NODE/proxy/configz); " + f.Fix
		} else {
			f.Fix = "grant get on nodes/proxy (read-only: it reaches the kubelet's /configz) to the user drydock runs as"
		}
		out = append(out, f)
	}
	return out
}

func nodeList(nodes []string) string {
	if len(nodes) == 1 {
		return "node " + nodes[0]
	}
	shown := nodes
	more := ""
	if len(shown) > 5 {
		shown, more = shown[:5], fmt.Sprintf(" and %d more", len(nodes)-5)
	}
	return fmt.Sprintf("%d nodes (%s%s)", len(nodes), strings.Join(shown, ", "), more)
}

// readConfigz is configz; the fast tests, whose fake clientset has no REST client, replace it.
var readConfigz = configz

// configz reads one kubelet's running configuration's feature gates.
func configz(ctx context.Context, in *Input, node string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, configzTimeout)
	defer cancel()
	raw, err := in.Kube.CoreV1().RESTClient().Get().Resource("nodes").Name(node).SubResource("proxy").Suffix("configz").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var c struct {
		KubeletConfig struct {
			FeatureGates map[string]bool `json:"featureGates"`
		} `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("node %s: configz is not the kubelet's JSON: %w", node, err)
	}
	return c.KubeletConfig.FeatureGates, nil
}

// volumes finds PersistentVolumes and pods' inline volumes whose plugin the target does not serve,
// or serves only through CSI migration to a driver that is not installed.
func volumes(ctx context.Context, in *Input) []Finding {
	var out []Finding
	drivers := map[string]bool{}
	dl, derr := in.Kube.StorageV1().CSIDrivers().List(ctx, metav1.ListOptions{})
	if derr == nil {
		for _, d := range dl.Items {
			drivers[d.Name] = true
		}
	}
	judge := func(ref ObjectRef, what string, u config.VolumeUse) {
		f := Finding{ObjectRef: ref, Source: SourceVolume}
		switch {
		case u.Gone != nil:
			when := "no release drydock upgrades from has it"
			if !u.Gone.Removed.IsZero() {
				when = "removed in " + u.Gone.Removed.String()
			}
			f.Severity, f.Reference = runbook.SeverityError, u.Gone.Source
			f.Message = fmt.Sprintf("%s uses the in-tree %s volume plugin, which %s does not have (%s): it cannot be mounted", what, u.Gone.Field, in.Target, when)
			f.Fix = "move the data to a CSI driver's volume (for Ceph: ceph-csi) before the upgrade"
		case u.GitRepo:
			served, src := config.GitRepoServed(in.Target)
			if served {
				return
			}
			f.Severity, f.Reference = runbook.SeverityError, src
			f.Message = fmt.Sprintf("%s uses a gitRepo volume, which %s no longer mounts (feature gate GitRepoVolumeDriver is locked off)", what, in.Target)
			f.Fix = "clone the repository in an init container into an emptyDir instead"
		case u.CSIDriver != "":
			if derr != nil {
				out = append(out, couldNotCheck("CSIDrivers", "could not list CSIDrivers, so in-tree volumes served through CSI migration were not checked", derr))
				derr = nil // said once
				return
			}
			if drivers[u.CSIDriver] {
				return
			}
			f.Severity = runbook.SeverityError
			f.Reference = "https://github.com/kubernetes/kubernetes/tree/v1.37.1/staging/src/k8s.io/csi-translation-lib/plugins"
			f.Message = fmt.Sprintf("%s uses the in-tree %s plugin, which %s serves only through CSI migration to %s, and that CSI driver is not installed (no CSIDriver %s)", what, u.InTree, in.Target, u.CSIDriver, u.CSIDriver)
			f.Fix = "install the " + u.CSIDriver + " CSI driver before the upgrade"
		default:
			return
		}
		out = append(out, f)
	}

	opts := metav1.ListOptions{Limit: 500}
	for {
		pvs, err := in.Kube.CoreV1().PersistentVolumes().List(ctx, opts)
		if err != nil {
			out = append(out, couldNotCheck("PersistentVolumes", "could not list PersistentVolumes, so their volume plugins were not checked", err))
			break
		}
		for i := range pvs.Items {
			pv := &pvs.Items[i]
			if u, ok := config.PVUse(pv); ok {
				judge(Ref("PersistentVolume", "", pv.Name), "PersistentVolume "+pv.Name, u)
			}
		}
		if opts.Continue = pvs.Continue; opts.Continue == "" {
			break
		}
	}

	seen := map[string]bool{} // one finding per owner and volume kind
	opts = metav1.ListOptions{Limit: 500}
	for {
		pods, err := in.Kube.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			out = append(out, couldNotCheck("Pods", "could not list pods, so their inline volumes were not checked", err))
			break
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			for j := range p.Spec.Volumes {
				u, ok := config.InlineUse(&p.Spec.Volumes[j])
				if !ok {
					continue
				}
				ref, what := ownerOf(p)
				key := ref.String() + "|" + fmt.Sprint(u.Gone != nil, u.GitRepo, u.CSIDriver)
				if seen[key] {
					continue
				}
				seen[key] = true
				judge(ref, what+" (volume "+p.Spec.Volumes[j].Name+")", u)
			}
		}
		if opts.Continue = pods.Continue; opts.Continue == "" {
			break
		}
	}
	return out
}

// ownerOf names a pod by its controller when it has one (ReplicaSets by their pod-template hash
// stripped, which is the Deployment's name in the common case).
func ownerOf(p *corev1.Pod) (ObjectRef, string) {
	if c := metav1.GetControllerOf(p); c != nil {
		return Ref(c.Kind, p.Namespace, c.Name), fmt.Sprintf("%s %s/%s (pod %s)", c.Kind, p.Namespace, c.Name, p.Name)
	}
	return Ref("Pod", p.Namespace, p.Name), "Pod " + p.Namespace + "/" + p.Name
}
