package storagemigration

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/drydock-dev/drydock/runbook"
)

// TestVia: auto takes the StorageVersionMigration API only where it is served; api without it is
// blocked, saying how to go on; drydock never asks.
func TestVia(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		via    string
		served bool
		want   bool
		err    error
	}{
		{"", true, true, nil},
		{"auto", false, false, nil},
		{"api", true, true, nil},
		{"api", false, false, runbook.ErrBlocked},
		{"drydock", true, false, nil},
	} {
		client := fake.NewClientset()
		if tc.served {
			client.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{
				GroupVersion: "storagemigration.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "storageversionmigrations", Kind: "StorageVersionMigration"}},
			}}
		}
		got, err := (&Step{Via: tc.via}).useAPI(&runbook.Env{Kube: client})
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("via %q, served %v: %v, %v; want %v, %v", tc.via, tc.served, got, err, tc.want, tc.err)
		}
	}
}
