package preflight

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// TestCouldNotCheck: a check whose reads fail (timed out, forbidden, unavailable, gone) reports what
// it could not examine as a finding of its own kind, with the reason; the other checks still run;
// --fail-on never counts it; the table lists it apart, never as a clean check.
func TestCouldNotCheck(t *testing.T) {
	t.Parallel()
	gr := schema.GroupResource{Group: "policy", Resource: "poddisruptionbudgets"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{apierrors.NewServerTimeout(gr, "list", 5), CouldNotTimeout},
		{apierrors.NewForbidden(gr, "", errors.New("no")), CouldNotForbidden},
		{apierrors.NewServiceUnavailable("etcd is down"), CouldNotUnavailable},
		{apierrors.NewNotFound(gr, ""), CouldNotNotFound},
		{context.DeadlineExceeded, CouldNotTimeout},
		{errors.New("something else"), CouldNotError},
	} {
		client := fake.NewClientset()
		client.PrependReactor("list", "poddisruptionbudgets", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err })
		in := &Input{Kube: client, Server: apis.Release{Major: 1, Minor: 37}, Target: apis.Release{Major: 1, Minor: 38}, ServerVersion: "v1.37.1"}
		rep, err := Run(context.Background(), in, []string{"pdb-check", "skew-check"})
		if err != nil {
			t.Fatalf("%v: the run failed: %v", tc.err, err)
		}
		cnc := CouldNot(rep.Findings())
		if len(cnc) != 1 || cnc[0].Check != "pdb-check" || cnc[0].CouldNotCheck != tc.want || cnc[0].NotAllowed != (tc.want == CouldNotForbidden) || cnc[0].Fix == "" {
			t.Errorf("%v: could not check: %+v, want one pdb-check finding %q", tc.err, cnc, tc.want)
		}
		if len(rep.Results) != 2 || rep.Results[1].Check != "skew-check" {
			t.Errorf("%v: the other check did not run: %+v", tc.err, rep.Results)
		}
		if n := FailOnWarning.Failing(rep.Findings()); n != 0 {
			t.Errorf("%v: --fail-on warning counts %d could-not-check finding(s)", tc.err, n)
		}
		var b bytes.Buffer
		if err := Write(&b, "table", rep, FailOnRemoved); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "could not check (1)") || !strings.Contains(b.String(), "? "+tc.want) || !strings.Contains(b.String(), "; 1 could not be checked") {
			t.Errorf("%v: table:\n%s", tc.err, b.String())
		}
	}
}
