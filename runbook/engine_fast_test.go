package runbook

// The fast tier for the engine: a run refused for a missing permission changes nothing, and one
// allowed everything runs, against a fake clientset (no cluster).

import (
	"context"
	"errors"
	"strings"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// evictingStep needs the eviction permission.
type evictingStep struct{ fakeSettings }

func (*evictingStep) Access() []Access {
	return []Access{{Verb: "create", Resource: "pods", Subresource: "eviction", Why: "it evicts"}}
}

// authorizer answers SelfSubjectAccessReviews: everything but what deny names is allowed.
func authorizer(c *fake.Clientset, deny string) {
	c.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).DeepCopy()
		ra := r.Spec.ResourceAttributes
		r.Status.Allowed = ra == nil || ra.Resource+"/"+ra.Subresource != deny
		return true, r, nil
	})
}

func TestRunRefusedForAMissingPermissionChangesNothing(t *testing.T) {
	t.Parallel()
	reg := Registry{{Name: "evict", Phase: PhaseAny, New: func() Step { return &evictingStep{fakeSettings{kind: "evict"}} }}}
	rb, err := Parse("t.yaml", []byte(header+"  steps:\n    - {name: a, type: evict}\n"), reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		deny    string
		allowed bool
	}{{"pods/eviction", false}, {"", true}} {
		client := fake.NewClientset()
		authorizer(client, c.deny)
		e := &Engine{Registry: reg, Decider: AlwaysContinue, Kube: client, StateDir: t.TempDir()}
		st, err := e.Start(context.Background(), rb)
		var ae *AccessError
		switch {
		case c.allowed && err != nil:
			t.Fatalf("allowed everything: %v", err)
		case c.allowed:
			if st.Status != RunSucceeded {
				t.Fatalf("run %s", st.Status)
			}
			continue
		case !errors.As(err, &ae) || !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "create pods/eviction (it evicts)"):
			t.Fatalf("without the eviction permission: %v, want an AccessError, forbidden", err)
		}
		for _, a := range client.Actions() {
			if a.GetVerb() != "create" || a.GetResource().Resource != "selfsubjectaccessreviews" {
				t.Fatalf("a refused run sent %s %s: nothing may change before access is known", a.GetVerb(), a.GetResource().Resource)
			}
		}
		if leases, _ := client.CoordinationV1().Leases(DefaultStateNamespace).List(context.Background(), metav1.ListOptions{}); len(leases.Items) != 0 {
			t.Fatal("a refused run took the lock")
		}
	}
}
