// Package invariants is what drydock's fault, crash and restart tests check after every run, the
// same each time: every node at the target, nothing left cordoned by drydock, an admin's cordon
// kept, and the journal true to the cluster (every node it says is upgraded is). The fourth
// invariant, no budget ever broken, is watched while the run goes (simcluster.BudgetWatch).
package invariants

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// Scene says which nodes to judge and what is expected of them.
type Scene struct {
	Selector string // the nodes of the scenario, as a label selector
	Target   string // the kubelet version every node must report
	Admin    string // a node an admin cordoned before the run: it must stay cordoned
	Drained  string // a node a drain step emptied: it must stay cordoned by the run
}

// Check returns every violation after run (nil when all hold).
func Check(ctx context.Context, client kubernetes.Interface, sc Scene, run *runbook.RunState) []string {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sc.Selector})
	if err != nil {
		return []string{fmt.Sprintf("list nodes %s: %v", sc.Selector, err)}
	}
	var out []string
	at := map[string]bool{}
	for _, n := range list.Items {
		at[n.Name] = n.Status.NodeInfo.KubeletVersion == sc.Target
		by := n.Annotations[drain.AnnotationCordonedBy]
		switch {
		case !at[n.Name]:
			out = append(out, fmt.Sprintf("node %s is at %s, not %s", n.Name, n.Status.NodeInfo.KubeletVersion, sc.Target))
		case n.Name == sc.Drained:
			if !n.Spec.Unschedulable || by != run.ID {
				out = append(out, fmt.Sprintf("the drained node %s: unschedulable %v, cordoned by %q", n.Name, n.Spec.Unschedulable, by))
			}
		case by != "":
			out = append(out, fmt.Sprintf("node %s is left cordoned by drydock run %s", n.Name, by))
		case n.Name == sc.Admin && !n.Spec.Unschedulable:
			out = append(out, fmt.Sprintf("the admin's cordon on %s was lifted", n.Name))
		case n.Name != sc.Admin && n.Spec.Unschedulable:
			out = append(out, fmt.Sprintf("node %s is left unschedulable", n.Name))
		}
	}
	if run.Status != runbook.RunSucceeded {
		out = append(out, fmt.Sprintf("run %s is %s", run.ID, run.Status))
	}
	for _, s := range run.Steps {
		for _, c := range s.Checkpoints {
			if n, ok := strings.CutPrefix(c, "upgraded/"); ok && !at[n] {
				out = append(out, fmt.Sprintf("the journal says %s is upgraded; the cluster does not", n))
			}
		}
	}
	return out
}
