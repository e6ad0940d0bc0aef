package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/runbook"
)

// NoNodeMatches is the error for a node selector (a canary's, a node group step's) that matches no
// node: a typo there must never read as "every node is at the target already" and turn a step off.
// It names the selector and the labels the cluster's nodes do carry, so the fix is a look away.
func NoNodeMatches(ctx context.Context, env *runbook.Env, field, selector string) error {
	list, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return runbook.Invalid(fmt.Errorf("%s %q matches no node (and listing every node to say which labels exist failed: %w)", field, selector, err))
	}
	if len(list.Items) == 0 {
		return runbook.Invalid(fmt.Errorf("%s %q matches no node: the cluster has no nodes", field, selector))
	}
	return runbook.Invalid(fmt.Errorf("%s %q matches none of the cluster's %d node(s): fix the selector; the nodes' labels are %s (`kubectl get nodes --show-labels` lists them per node)",
		field, selector, len(list.Items), LabelSummary(list.Items, 12)))
}

// LabelSummary lists the label keys of nodes with their values (at most three values a key, "and N
// more" after), the most common keys first, at most limit keys.
func LabelSummary(nodes []corev1.Node, limit int) string {
	values := map[string]map[string]bool{}
	count := map[string]int{}
	for _, n := range nodes {
		for k, v := range n.Labels {
			if values[k] == nil {
				values[k] = map[string]bool{}
			}
			values[k][v] = true
			count[k]++
		}
	}
	keys := slices.Sorted(maps.Keys(values))
	slices.SortStableFunc(keys, func(a, b string) int { return count[b] - count[a] })
	var parts []string
	for i, k := range keys {
		if i == limit {
			parts = append(parts, fmt.Sprintf("and %d more key(s)", len(keys)-limit))
			break
		}
		vs := slices.Sorted(maps.Keys(values[k]))
		s := k + "=" + strings.Join(vs[:min(3, len(vs))], "|")
		if len(vs) > 3 {
			s += fmt.Sprintf("|…(%d values)", len(vs))
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "none (no node has a label)"
	}
	return strings.Join(parts, ", ")
}
