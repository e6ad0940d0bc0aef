package rehearse

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// TestCaptureIsReadOnlyAndKeepsNoSecret: capturing lists and nothing else, never touches a Secret or
// a ConfigMap, and keeps no reference to one in the templates it copies.
func TestCaptureIsReadOnlyAndKeepsNoSecret(t *testing.T) {
	t.Parallel()
	replicas := int32(3)
	class := "fast"
	one := intstr.FromInt32(1)
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
			NodeSelector: map[string]string{"pool": "general"},
			Volumes: []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds-secret"}}},
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}},
			Containers: []corev1.Container{{Name: "web", Image: "web:1",
				Env:     []corev1.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds-secret"}, Key: "t"}}}},
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}},
		},
	}
	client := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"pool": "general"}}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.36.3"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "creds-secret"}, Data: map[string][]byte{"t": []byte("s3cret")}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cfg"}, Data: map[string]string{"mode": "x"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: tmpl}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}, Spec: appsv1.StatefulSetSpec{Replicas: &one.IntVal,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1",
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class,
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "data-db-0"}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-db-0", StorageClassName: &class},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}},
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-db-0"}, Spec: corev1.PersistentVolumeSpec{StorageClassName: class,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"zone-a"}}}}}}},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "ebs", VolumeHandle: "vol-1",
				NodePublishSecretRef: &corev1.SecretReference{Namespace: "shop", Name: "creds-secret"}}}}},
	)
	s, err := Capture(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" {
			t.Errorf("capture made a %s request (%s): it may only list", a.GetVerb(), a.GetResource().Resource)
		}
		if r := a.GetResource().Resource; r == "secrets" || r == "configmaps" {
			t.Errorf("capture read %s", r)
		}
	}
	if len(s.Nodes) != 1 || s.Nodes[0].KubeletVersion != "v1.36.3" || len(s.Workloads) != 2 || s.Workloads[0].Replicas != 3 || len(s.Budgets) != 1 {
		t.Fatalf("state: %+v", s)
	}
	// The claim is copied with its volume's zone, and nothing of the volume's source (its secret).
	if len(s.Volumes) != 1 || s.Volumes[0].Claim != "data-db-0" || s.Volumes[0].NodeAffinity == nil ||
		s.Volumes[0].NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "zone-a" {
		t.Fatalf("volumes: %+v", s.Volumes)
	}
	if db := s.Workloads[1]; db.Kind != "StatefulSet" || len(db.ClaimTemplates) != 1 || db.ClaimTemplates[0].Name != "data" || *db.ClaimTemplates[0].Spec.StorageClassName != "" {
		t.Fatalf("the StatefulSet's claim templates: %+v", db.ClaimTemplates)
	}
	if b, _ := json.Marshal(s); strings.Contains(string(b), "creds-secret") || strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "vol-1") {
		t.Errorf("the copy names a secret or a volume's source: %s", b)
	}
	spec := s.Workloads[0].Template.Spec
	if spec.ServiceAccountName != "" || spec.ImagePullSecrets != nil || spec.Volumes[0].Secret != nil || spec.Volumes[1].ConfigMap != nil || spec.Volumes[0].EmptyDir != nil || spec.Volumes[0].DownwardAPI == nil ||
		len(spec.Containers[0].Env) != 1 || spec.Containers[0].EnvFrom != nil || spec.NodeSelector["pool"] != "general" {
		t.Fatalf("template not stripped (or scheduling lost): %+v", spec)
	}
	if got := strings.Join(s.Skipped, "; "); !strings.Contains(got, "volumes from Secrets") || !strings.Contains(got, "environment") {
		t.Errorf("what was left out is not said: %q", got)
	}
}
