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
	Skipped         []string                       `json:"skipped,omitempty"` // what was not copied, and why
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

// Namespace is a namespace's name and labels (namespace selectors match them).
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Workload is a controller with its replicas and its pod template, stripped (Strip).
type Workload struct {
	Kind      string                 `json:"kind"` // Deployment, StatefulSet, DaemonSet, ReplicaSet
	Namespace string                 `json:"namespace"`
	Name      string                 `json:"name"`
	Replicas  int32                  `json:"replicas"`
	Selector  *metav1.LabelSelector  `json:"selector"`
	Template  corev1.PodTemplateSpec `json:"template"`
	// Startup is how long its pods took from creation to Ready on the live cluster (the mean over
	// its Ready pods; 0: none to measure).
	Startup time.Duration `json:"startup,omitempty"`
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
		s.add("Deployment", d.ObjectMeta, d.Spec.Replicas, d.Spec.Selector, d.Spec.Template)
	}
	sts, err := c.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list StatefulSets: %w", err)
	}
	for _, st := range sts.Items {
		s.add("StatefulSet", st.ObjectMeta, st.Spec.Replicas, st.Spec.Selector, st.Spec.Template)
	}
	dss, err := c.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list DaemonSets: %w", err)
	}
	for _, ds := range dss.Items {
		s.add("DaemonSet", ds.ObjectMeta, nil, ds.Spec.Selector, ds.Spec.Template)
	}
	rss, err := c.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: list ReplicaSets: %w", err)
	}
	for _, rs := range rss.Items {
		if metav1.GetControllerOf(&rs) == nil {
			s.add("ReplicaSet", rs.ObjectMeta, rs.Spec.Replicas, rs.Spec.Selector, rs.Spec.Template)
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
	for i := range pods.Items {
		p := &pods.Items[i]
		o := metav1.GetControllerOf(p)
		if o == nil {
			continue
		}
		key := p.Namespace + "/" + o.Kind + "/" + o.Name
		if d, ok := owner[key]; ok {
			key = d
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && !p.CreationTimestamp.IsZero() {
				if d := cond.LastTransitionTime.Sub(p.CreationTimestamp.Time); d >= 0 && d < time.Hour {
					took[key] = append(took[key], d)
				}
			}
		}
	}
	for i := range s.Workloads {
		w := &s.Workloads[i]
		if ds := took[w.Namespace+"/"+w.Kind+"/"+w.Name]; len(ds) > 0 {
			var sum time.Duration
			for _, d := range ds {
				sum += d
			}
			w.Startup = sum / time.Duration(len(ds))
		}
	}
	sort.Slice(s.Workloads, func(i, j int) bool {
		a, b := s.Workloads[i], s.Workloads[j]
		return a.Namespace+"/"+a.Kind+"/"+a.Name < b.Namespace+"/"+b.Kind+"/"+b.Name
	})
	return s, nil
}

func (s *State) add(kind string, meta metav1.ObjectMeta, replicas *int32, sel *metav1.LabelSelector, t corev1.PodTemplateSpec) {
	r := int32(1)
	if replicas != nil {
		r = *replicas
	}
	w := Workload{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Replicas: r, Selector: sel, Template: *t.DeepCopy()}
	for _, said := range Strip(&w.Template) {
		if !slices.Contains(s.Skipped, said) {
			s.Skipped = append(s.Skipped, said)
		}
	}
	s.Workloads = append(s.Workloads, w)
}

// Strip removes from a pod template everything that is not scheduling and could carry a secret or
// need an object the simulation does not have: Secret, ConfigMap, projected and claim volumes become
// emptyDir (a claim's zone is kept as required node affinity when it has one: not yet), environment
// from Secrets or ConfigMaps goes, image pull secrets and the service account go. It says what it
// changed, once per kind of change.
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
		case v.Secret != nil, v.ConfigMap != nil, v.Projected != nil, v.PersistentVolumeClaim != nil, v.CSI != nil, v.Ephemeral != nil:
			v.VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
			say("volumes from Secrets, ConfigMaps and claims are emptyDir in the rehearsal")
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
