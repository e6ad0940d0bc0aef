package runbook

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

// blockedNodes is a node step whose plan has one certain blocker on node n2 and a warning on n1.
type blockedNodes struct {
	fakeSettings
	ran *bool
}

func (b *blockedNodes) Run(context.Context, *Env) error { *b.ran = true; return nil }

func (b *blockedNodes) PlanNodes(_ context.Context, env *Env) (*NodePlan, error) {
	p := &NodePlan{Batches: []NodeBatch{
		{Nodes: []PlannedNode{{Node: "n1", Evict: 2, Blockers: []Finding{{Severity: SeverityWarning, Object: "pod/a/x", Message: "budget at zero now"}}}}},
		{Nodes: []PlannedNode{{Node: "n2", Evict: 1, Blockers: []Finding{{Severity: SeverityError, Object: "pod/a/db", Message: "minAvailable: 100%", Hint: "allow one disruption"}}}}},
	}}
	if by := env.PlannedBefore["n1"]; by != "" {
		p.Batches = p.Batches[1:]
		p.Left = []LeftNode{{Node: "n1", Reason: "upgraded by step " + by + " first"}}
	}
	return p, nil
}

// TestWholeRunbookPlan: a certain blocker in a node step refuses the run before anything runs and
// leaves no journal, unless the step says onBlocked: proceed; a warning never does; a node an
// earlier node step takes is left to it; onBlocked on a step that drains nothing is a problem.
func TestWholeRunbookPlan(t *testing.T) {
	t.Parallel()
	var ran bool
	reg := Registry{
		{Name: "nodes", Phase: PhaseNodes, New: func() Step { return &blockedNodes{fakeSettings: fakeSettings{kind: "nodes"}, ran: &ran} }},
		fakeKind("fake", PhaseAny),
	}
	for _, tc := range []struct {
		onBlocked string
		blocked   bool
	}{{"", true}, {"stop", true}, {"proceed", false}} {
		ran = false
		with := ""
		if tc.onBlocked != "" {
			with = ", onBlocked: " + tc.onBlocked
		}
		steps := "    - {name: first, type: nodes" + with + "}\n    - {name: second, type: nodes" + with + "}\n"
		rb, err := Parse("t.yaml", []byte(header+"  steps:\n"+steps), reg)
		if err != nil {
			t.Fatal(err)
		}
		client := fake.NewClientset()
		authorizer(client, "")
		dir := t.TempDir()
		e := &Engine{Registry: reg, Decider: AlwaysContinue, Kube: client, StateDir: dir}
		plans, err := e.PlanNodes(context.Background(), rb, nil)
		if len(plans) != 2 || len(plans[1].Batches) != 1 || len(plans[1].Left) != 1 || plans[1].Left[0].Reason != "upgraded by step first first" {
			t.Fatalf("onBlocked %q: plans %+v", tc.onBlocked, plans)
		}
		_, err = e.Start(context.Background(), rb)
		var bpe *BlockedPlanError
		if tc.blocked {
			entries, _ := os.ReadDir(dir)
			if !errors.As(err, &bpe) || !errors.Is(err, ErrBlocked) || ran || len(entries) != 0 ||
				!strings.Contains(err.Error(), `step "first": pod/a/db: minAvailable: 100% (fix: allow one disruption)`) {
				t.Errorf("onBlocked %q: err %v, ran %v, journals %v", tc.onBlocked, err, ran, entries)
			}
			continue
		}
		if err != nil || !ran || !plans[0].Proceed {
			t.Errorf("onBlocked %q: err %v, ran %v", tc.onBlocked, err, ran)
		}
	}

	_, err := Parse("t.yaml", []byte(header+"  steps:\n    - {name: a, type: fake, onBlocked: proceed}\n"), reg)
	var ps Problems
	if !errors.As(err, &ps) || !strings.Contains(err.Error(), "onBlocked applies to node steps") {
		t.Errorf("onBlocked on a step that drains nothing: %v", err)
	}
}
