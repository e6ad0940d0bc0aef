package rollout

import (
	"context"
	"strings"
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/drydock-dev/drydock/runbook"
)

// TestGatesJudgeOnlyTheirNamespaces: a budget at zero in a namespace the gates do not watch (another
// team's drain in progress) does not fail them; one in a watched namespace does.
func TestGatesJudgeOnlyTheirNamespaces(t *testing.T) {
	t.Parallel()
	pdb := func(ns string, allowed int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed, DesiredHealthy: 1, CurrentHealthy: 1}}
	}
	client := fake.NewClientset(pdb("mine", 1), pdb("theirs", 1))
	g, err := NewGates(context.Background(), &runbook.Env{Kube: client}, Health{Namespaces: []string{"mine"}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	// Both budgets drop to zero after the baseline.
	for _, ns := range []string{"mine", "theirs"} {
		if err := g.pdbs.GetStore().Update(pdb(ns, 0)); err != nil {
			t.Fatal(err)
		}
	}
	problems := strings.Join(g.Problems(context.Background()), "\n")
	if !strings.Contains(problems, "mine/web") || strings.Contains(problems, "theirs/web") {
		t.Fatalf("problems:\n%s\nwant mine/web only", problems)
	}
}
