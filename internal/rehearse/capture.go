// Package rehearse copies the scheduling-relevant state of a live cluster into a simulated one, to
// play a runbook's node steps there first (drydock rehearse). Capturing is read-only: it lists and
// gets, and never reads a Secret or a ConfigMap; the pod templates it keeps are stripped of every
// reference to one.
package rehearse

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// State is what scheduling and draining depend on, and nothing else.
type State struct {
	Nodes           []Node                         `json:"nodes"`
	Namespaces      []Namespace                    `json:"namespaces"`
	PriorityClasses []schedulingv1.PriorityClass   `json:"priorityClasses,omitempty"`
	Workloads       []Workload                     `json:"workloads"`
	Budgets         []policyv1.PodDisruptionBudget `json:"budgets,omitempty"`
	// Volumes are the bound claims and their volumes, where they may be used (a zone, a node): the
	// scheduler keeps a pod with its volume as on the cluster. No data, no volume source: the copy's
	// volume is of a CSI driver nothing serves (local where the cluster's is local).
	Volumes []Volume `json:"volumes,omitempty"`
	// Bare are the pods no controller owns.
	Bare    []BarePod `json:"bare,omitempty"`
	Skipped []string  `json:"skipped,omitempty"` // what was not copied, and why
}

// Node is a node as the scheduler sees it.
type Node struct {
	Name           string              `json:"name"`
	Labels         map[string]string   `json:"labels,omitempty"`
	Taints         []corev1.Taint      `json:"taints,omitempty"`
	Unschedulable  bool                `json:"unschedulable,omitempty"`
	Allocatable    corev1.ResourceList `json:"allocatable"`
	KubeletVersion string              `json:"kubeletVersion"`
}

// PodPlace is a pod's name and its node.
type PodPlace struct {
	Name string `json:"name"`
	Node string `json:"node"`
}

// BarePod is a pod no controller owns, on its node: the copy has it too (a drain refuses it, unless
// told to delete it, on the cluster as in the rehearsal).
type BarePod struct {
	Namespace string                 `json:"namespace"`
	Name      string                 `json:"name"`
	Node      string                 `json:"node"`
	Template  corev1.PodTemplateSpec `json:"template"` // its labels, annotations and spec, stripped
}

// Volume is a bound claim and its PersistentVolume's size, access modes and node affinity.
type Volume struct {
	Namespace    string                              `json:"namespace"`
	Claim        string                              `json:"claim"`
	PV           string                              `json:"pv"`
	Capacity     corev1.ResourceList                 `json:"capacity"`
	AccessModes  []corev1.PersistentVolumeAccessMode `json:"accessModes"`
	NodeAffinity *corev1.VolumeNodeAffinity          `json:"nodeAffinity,omitempty"`
	// Local: the volume is a local disk (or a host path) of one node; drains treat its pods apart.
	Local bool `json:"local,omitempty"`
}

// Namespace is a namespace's name and labels (namespace selectors match them).
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Workload is a controller with its replicas and its pod template, stripped (Strip).
type Workload struct {
	Kind      string `json:"kind"` // Deployment, StatefulSet, DaemonSet, ReplicaSet
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Replicas  int32  `json:"replicas"`
	// Ready is how many of its pods were Ready on the live cluster: the copy waits for as many.
	Ready    int32                  `json:"ready"`
	Selector *metav1.LabelSelector  `json:"selector"`
	Template corev1.PodTemplateSpec `json:"template"`
	// ClaimTemplates are a StatefulSet's, by name and size: the claims the cluster has are copied
	// bound (Volumes); one the copy must make has no storage class and stays Pending.
	ClaimTemplates []corev1.PersistentVolumeClaim `json:"claimTemplates,omitempty"`
	// Pods are where its pods ran on the cluster (name and node): the copy places its pods on the
	// same nodes, so that a drain there moves what it would move on the cluster.
	Pods []PodPlace `json:"pods,omitempty"`
	// Startup is how long its pods took from scheduled to Ready on the live cluster (the mean over
	// its Ready pods); Measured says whether any pod was there to measure.
	Startup  time.Duration `json:"startup,omitempty"`
	Measured bool          `json:"measured,omitempty"`
}

// Capture reads the cluster's scheduling-relevant state: lists of nodes, namespaces, PriorityClasses,
// Deployments, StatefulSets, DaemonSets, ReplicaSets no Deployment owns, PodDisruptionBudgets, and
// pods (only their owners and Ready times: each workload's start-up).
func Capture(ctx context.Context, c kubernetes.Interface) (*State, error) {
	s := &State{}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		s.Nodes = append(s.Nodes, Node{Name: n.Name, Labels: n.Labels, Taints: n.Spec.Taints, Unschedulable: n.Spec.Unschedulable,
			Allocatable: n.Status.Allocatable, KubeletVersion: n.Status.NodeInfo.KubeletVersion})
	}
	nss, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list namespaces: %w", err)
	}
	for _, ns := range nss.Items {
		s.Namespaces = append(s.Namespaces, Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	pcs, err := c.SchedulingV1().PriorityClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list PriorityClasses: %w", err)
	}
	for _, pc := range pcs.Items {
		if pc.Name == "system-cluster-critical" || pc.Name == "system-node-critical" {
			continue // every cluster has them
		}
		s.PriorityClasses = append(s.PriorityClasses, schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: pc.Name, Labels: pc.Labels},
			Value: pc.Value, GlobalDefault: pc.GlobalDefault, PreemptionPolicy: pc.PreemptionPolicy})
	}
	deps, err := c.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list Deployments: %w", err)
	}
	for _, d := range deps.Items {
		s.add("Deployment", d.ObjectMeta, d.Spec.Replicas, d.Status.ReadyReplicas, d.Spec.Selector, d.Spec.Template)
	}
	sts, err := c.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list StatefulSets: %w", err)
	}
	for _, st := range sts.Items {
		s.add("StatefulSet", st.ObjectMeta, st.Spec.Replicas, st.Status.ReadyReplicas, st.Spec.Selector, st.Spec.Template)
		w := &s.Workloads[len(s.Workloads)-1]
		none := ""
		for _, ct := range st.Spec.VolumeClaimTemplates {
			w.ClaimTemplates = append(w.ClaimTemplates, corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: ct.Name},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: ct.Spec.AccessModes, Resources: ct.Spec.Resources, VolumeMode: ct.Spec.VolumeMode, StorageClassName: &none}})
		}
	}
	dss, err := c.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list DaemonSets: %w", err)
	}
	for _, ds := range dss.Items {
		s.add("DaemonSet", ds.ObjectMeta, nil, ds.Status.NumberReady, ds.Spec.Selector, ds.Spec.Template)
	}
	rss, err := c.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list ReplicaSets: %w", err)
	}
	for _, rs := range rss.Items {
		if metav1.GetControllerOf(&rs) == nil {
			s.add("ReplicaSet", rs.ObjectMeta, rs.Spec.Replicas, rs.Status.ReadyReplicas, rs.Spec.Selector, rs.Spec.Template)
		}
	}
	pdbs, err := c.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list PodDisruptionBudgets: %w", err)
	}
	for _, p := range pdbs.Items {
		s.Budgets = append(s.Budgets, policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
			Spec: *p.Spec.DeepCopy()})
	}
	if err := s.captureVolumes(ctx, c); err != nil {
		return nil, err
	}
	pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list pods: %w", err)
	}
	owner := map[string]string{} // ReplicaSet -> its Deployment
	for _, rs := range rss.Items {
		if o := metav1.GetControllerOf(&rs); o != nil && o.Kind == "Deployment" {
			owner[rs.Namespace+"/ReplicaSet/"+rs.Name] = rs.Namespace + "/Deployment/" + o.Name
		}
	}
	took := map[string][]time.Duration{}
	placed := map[string][]PodPlace{}
	jobs := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		running := p.Spec.NodeName != "" && p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
		o := metav1.GetControllerOf(p)
		if o == nil {
			if running {
				t := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: p.Labels, Annotations: p.Annotations}, Spec: *p.Spec.DeepCopy()}
				t.Spec.NodeName = ""
				s.note(Strip(&t))
				s.Bare = append(s.Bare, BarePod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, Template: t})
			}
			continue
		}
		key := p.Namespace + "/" + o.Kind + "/" + o.Name
		if d, ok := owner[key]; ok {
			key = d
		}
		if o.Kind == "Job" && running {
			jobs++
		}
		if running {
			placed[key] = append(placed[key], PodPlace{Name: p.Name, Node: p.Spec.NodeName})
		}
		// From scheduled (else created) to Ready: the copy's own scheduler adds its own latency.
		from, ready := p.CreationTimestamp.Time, time.Time{}
		for _, cond := range p.Status.Conditions {
			switch {
			case cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionTrue && !cond.LastTransitionTime.IsZero():
				from = cond.LastTransitionTime.Time
			case cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue:
				ready = cond.LastTransitionTime.Time
			}
		}
		if d := ready.Sub(from); !ready.IsZero() && !from.IsZero() && d >= 0 && d < time.Hour {
			took[key] = append(took[key], d)
		}
	}
	if jobs > 0 {
		s.Skipped = append(s.Skipped, fmt.Sprintf("%d running pod(s) of Jobs are not copied", jobs))
	}
	for i := range s.Workloads {
		w := &s.Workloads[i]
		w.Pods = placed[w.Namespace+"/"+w.Kind+"/"+w.Name]
		if ds := took[w.Namespace+"/"+w.Kind+"/"+w.Name]; len(ds) > 0 {
			var sum time.Duration
			for _, d := range ds {
				sum += d
			}
			w.Startup, w.Measured = sum/time.Duration(len(ds)), true
		}
	}
	sort.Slice(s.Workloads, func(i, j int) bool {
		a, b := s.Workloads[i], s.Workloads[j]
		return a.Namespace+"/"+a.Kind+"/"+a.Name < b.Namespace+"/"+b.Kind+"/"+b.Name
	})
	return s, nil
}

// captureVolumes keeps each bound claim with its volume's size, modes and node affinity.
func (s *State) captureVolumes(ctx context.Context, c kubernetes.Interface) error {
	pvs, err := c.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("rehearse: list PersistentVolumes: %w", err)
	}
	byName := map[string]*corev1.PersistentVolume{}
	for i := range pvs.Items {
		byName[pvs.Items[i].Name] = &pvs.Items[i]
	}
	pvcs, err := c.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("rehearse: list PersistentVolumeClaims: %w", err)
	}
	for _, pvc := range pvcs.Items {
		pv := byName[pvc.Spec.VolumeName]
		if pvc.Status.Phase != corev1.ClaimBound || pv == nil {
			continue // a claim not bound: its pods are not running on the cluster either
		}
		v := Volume{Namespace: pvc.Namespace, Claim: pvc.Name, PV: pv.Name, Capacity: pv.Spec.Capacity, AccessModes: pv.Spec.AccessModes,
			Local: pv.Spec.Local != nil || pv.Spec.HostPath != nil}
		if pv.Spec.NodeAffinity != nil {
			v.NodeAffinity = pv.Spec.NodeAffinity.DeepCopy()
		}
		s.Volumes = append(s.Volumes, v)
	}
	if len(s.Volumes) > 0 {
		s.Skipped = append(s.Skipped, "bound claims are copied with their volumes' zones and nodes, and no data: volumes of a driver nothing serves (local ones stay local)")
	}
	return nil
}

func (s *State) add(kind string, meta metav1.ObjectMeta, replicas *int32, ready int32, sel *metav1.LabelSelector, t corev1.PodTemplateSpec) {
	r := int32(1)
	if replicas != nil {
		r = *replicas
	}
	w := Workload{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Replicas: r, Ready: min(ready, r), Selector: sel, Template: *t.DeepCopy()}
	s.note(Strip(&w.Template))
	s.Workloads = append(s.Workloads, w)
}

// PodCount is how many pods the copy starts with: the workloads' and the bare ones.
func (s *State) PodCount() int {
	n := len(s.Bare)
	for _, w := range s.Workloads {
		if w.Kind == "DaemonSet" {
			n += len(w.Pods)
		} else {
			n += int(w.Replicas)
		}
	}
	return n
}

// note keeps what Strip said, once each.
func (s *State) note(said []string) {
	for _, one := range said {
		if !slices.Contains(s.Skipped, one) {
			s.Skipped = append(s.Skipped, one)
		}
	}
}

// Strip removes from a pod template everything that is not scheduling and could carry a secret or
// need an object the simulation does not have: Secret, ConfigMap, projected, CSI, ephemeral and
// network volumes become empty downward API volumes (a claim stays: the copy has the claim, bound
// to a volume where the cluster's is; emptyDir and hostPath stay), environment from Secrets or
// ConfigMaps goes, image pull secrets and the service account go. It says what it changed, once
// per kind of change.
func Strip(t *corev1.PodTemplateSpec) []string {
	var said []string
	say := func(s string) {
		if !slices.Contains(said, s) {
			said = append(said, s)
		}
	}
	for i := range t.Spec.Volumes {
		v := &t.Spec.Volumes[i]
		switch {
		case v.PersistentVolumeClaim != nil, v.EmptyDir != nil, v.HostPath != nil, v.DownwardAPI != nil:
			// kept: a claim is copied bound; emptyDir and hostPath matter to a drain's filters
			// (kubectl refuses emptyDir pods unless told), and carry nothing.
		default:
			// Secret, ConfigMap, projected, CSI, ephemeral and network volumes may name a secret: an
			// empty downward API volume instead, which the drain's filters treat as they treat those
			// (not emptyDir: that would make a blocker the cluster does not have).
			v.VolumeSource = corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}
			say("volumes from Secrets, ConfigMaps, CSI drivers, ephemeral claims and network storage are empty in the rehearsal")
		}
	}
	strip := func(cs []corev1.Container) {
		for i := range cs {
			c := &cs[i]
			var env []corev1.EnvVar
			for _, e := range c.Env {
				if e.ValueFrom != nil && (e.ValueFrom.SecretKeyRef != nil || e.ValueFrom.ConfigMapKeyRef != nil) {
					say("environment from Secrets and ConfigMaps is left out")
					continue
				}
				env = append(env, e)
			}
			c.Env = env
			if len(c.EnvFrom) > 0 {
				c.EnvFrom = nil
				say("environment from Secrets and ConfigMaps is left out")
			}
		}
	}
	strip(t.Spec.InitContainers)
	strip(t.Spec.Containers)
	t.Spec.ImagePullSecrets = nil
	t.Spec.ServiceAccountName, t.Spec.DeprecatedServiceAccount = "", ""
	no := false
	t.Spec.AutomountServiceAccountToken = &no
	return said
}
