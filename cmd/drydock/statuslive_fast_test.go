package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// TestStatusAfterACrash: for a run journaled as running whose process on this machine is gone,
// status says it is dead (not "running, or its process died") and lists each node the run still
// holds cordoned with the command that finishes or undoes it; an admin's cordon is not listed.
func TestStatusAfterACrash(t *testing.T) {
	t.Parallel()
	dead := runbook.ThisProcess()
	dead.PID = 1 << 22 // above pid_max's default: no such process
	alive := runbook.ThisProcess()
	cordoned := func(name, by string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{drain.AnnotationCordonedBy: by}}, Spec: corev1.NodeSpec{Unschedulable: by != ""}}
	}
	admin := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3"}, Spec: corev1.NodeSpec{Unschedulable: true}}
	for _, tc := range []struct {
		name   string
		holder *runbook.Holder
		says   []string
		not    []string
	}{
		{"its process died", dead, []string{"Process:", "dead: pid 4194304 on this machine is gone; `drydock resume r1` takes the run over at once",
			"Cordoned by this run:", "n1: `drydock resume r1` finishes it; `drydock rollback r1` undoes it", "its process died: resume takes the run over at once"},
			[]string{"n2", "n3", "or its process died"}},
		{"its process runs", alive, []string{"alive: pid", "n1: `drydock resume r1`", "the run is in progress"}, []string{"dead"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, out, _ := testFactory(t)
			client := fake.NewClientset(cordoned("n1", "r1"), cordoned("n2", "other-run"), admin)
			f.RESTConfig = func() (*rest.Config, error) { return &rest.Config{Host: "https://10.0.0.1:6443"}, nil }
			f.KubeClient = func() (kubernetes.Interface, error) { return client, nil }
			state := t.TempDir()
			writeJournal(t, state, &runbook.RunState{ID: "r1", Runbook: "up", Cluster: "https://10.0.0.1:6443", Status: runbook.RunRunning, Holder: tc.holder,
				Created: time.Now(), Updated: time.Now(), Steps: []runbook.StepState{{Name: "fleet", Kind: "nodegroups", Status: runbook.StatusRunning}}})
			o := &StatusOptions{Print: newObjectPrintFlags(), StateFlags: StateFlags{StateDir: state}, f: f}
			if err := o.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.says {
				if !strings.Contains(out.String(), s) {
					t.Errorf("status does not say %q:\n%s", s, out)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(out.String(), s) {
					t.Errorf("status says %q:\n%s", s, out)
				}
			}
			for _, a := range client.Actions() {
				if a.GetVerb() != "list" && a.GetVerb() != "get" {
					t.Errorf("status wrote: %s %s", a.GetVerb(), a.GetResource().Resource)
				}
			}
		})
	}
}
