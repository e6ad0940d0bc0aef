package rehearse

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// TestStamp: a Deployment's ReplicaSet is made as the Deployment controller would make it (owned
// by the Deployment, a pod-template-hash in its selector and its template, the template otherwise
// the Deployment's), and its pods as they run on the cluster: one per pod there, on its node, at
// most the replicas, owned by the ReplicaSet, matching its selector, made running.
func TestStamp(t *testing.T) {
	t.Parallel()
	replicas := int32(3)
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{readyDelay: "2s"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}}}}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: types.UID("d-uid")},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: tmpl}}
	w := Workload{Kind: "Deployment", Namespace: "shop", Name: "web", Replicas: replicas,
		Pods: []PodPlace{{Name: "a", Node: "n1"}, {Name: "b", Node: "n1"}, {Name: "c", Node: "n2"}, {Name: "old", Node: "n3"}}}
	c := fake.NewClientset()
	pods, err := stamp(context.Background(), c, w, d)
	if err != nil {
		t.Fatal(err)
	}
	rss, err := c.AppsV1().ReplicaSets("shop").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(rss.Items) != 1 {
		t.Fatalf("ReplicaSets: %v %d, want 1", err, len(rss.Items))
	}
	rs := rss.Items[0]
	hash := rs.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if hash == "" || rs.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || rs.Name != "web-"+hash {
		t.Errorf("ReplicaSet %s: template labels %v, selector %v: want one pod-template-hash in both and the name", rs.Name, rs.Spec.Template.Labels, rs.Spec.Selector)
	}
	if o := metav1.GetControllerOf(&rs); o == nil || o.Kind != "Deployment" || o.UID != d.UID {
		t.Errorf("ReplicaSet owner %+v, want the Deployment", o)
	}
	// The Deployment controller takes a ReplicaSet for its own when the templates are equal but for the hash.
	got := rs.Spec.Template.DeepCopy()
	delete(got.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if got.Labels["app"] != "web" || len(got.Labels) != 1 || got.Annotations[readyDelay] != "2s" || *rs.Spec.Replicas != replicas {
		t.Errorf("ReplicaSet template %+v, replicas %d: want the Deployment's", got.ObjectMeta, *rs.Spec.Replicas)
	}
	if len(tmpl.Labels) != 1 {
		t.Errorf("the Deployment's template labels were changed: %v", tmpl.Labels)
	}
	sel, _ := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	var nodes []string
	for _, p := range pods {
		nodes = append(nodes, p.Spec.NodeName)
		if o := metav1.GetControllerOf(p); o == nil || o.Kind != "ReplicaSet" || o.Name != rs.Name {
			t.Errorf("pod on %s: owner %+v, want the ReplicaSet", p.Spec.NodeName, o)
		}
		if !sel.Matches(labels.Set(p.Labels)) || p.Annotations[simcluster.RunningAnnotation] == "" || p.GenerateName != rs.Name+"-" {
			t.Errorf("pod on %s: labels %v, annotations %v, generateName %q", p.Spec.NodeName, p.Labels, p.Annotations, p.GenerateName)
		}
	}
	if want := []string{"n1", "n1", "n2"}; len(nodes) != len(want) || nodes[0] != want[0] || nodes[1] != want[1] || nodes[2] != want[2] {
		t.Errorf("pods on %v, want %v (as on the cluster, at most the replicas)", nodes, want)
	}
	if _, ok := rs.Spec.Template.Annotations[simcluster.RunningAnnotation]; ok {
		t.Error("the ReplicaSet's template is marked running: its replacements would start at once")
	}
}
