package controlplane

import (
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/runbook"
)

// TestJudgeSkewAcrossAPIServers: the skew policy over every running apiserver, as the gate judges
// it after each member: a kubelet newer than the oldest apiserver is blocked even when another
// apiserver (the one a load balancer answers from) is at its version; a kubelet too far behind is
// judged against the newest; apiservers more than one minor apart are blocked, naming both; a
// development build is left out.
func TestJudgeSkewAcrossAPIServers(t *testing.T) {
	t.Parallel()
	a := func(who, v string) answer { return answer{Who: who, Version: v} }
	for _, tc := range []struct {
		name     string
		servers  []answer
		kubelets []string
		maxSkew  int
		want     string // "" passes
	}{
		{"one apiserver, within", []answer{a("A", "v1.37.1")}, []string{"v1.37.1", "v1.34.0"}, 3, ""},
		{"mixed minors, kubelets at the oldest", []answer{a("A", "v1.37.1"), a("B", "v1.36.3")}, []string{"v1.36.3"}, 3, ""},
		{"kubelet newer than the oldest", []answer{a("A", "v1.37.1"), a("B", "v1.36.3")}, []string{"v1.37.1"}, 3,
			"kubelets newer than the oldest apiserver v1.36.3 at B: n0 (v1.37.1)"},
		{"the oldest listed first or last alike", []answer{a("B", "v1.36.3"), a("A", "v1.37.1")}, []string{"v1.37.0"}, 3,
			"kubelets newer than the oldest apiserver v1.36.3 at B: n0 (v1.37.0)"},
		{"too old against the newest, not the oldest", []answer{a("A", "v1.37.1"), a("B", "v1.36.3")}, []string{"v1.33.9"}, 3,
			"kubelets more than 3 minors behind the newest apiserver v1.37.1 at A: n0 (v1.33.9)"},
		{"stricter fleet", []answer{a("A", "v1.37.1")}, []string{"v1.35.4"}, 1,
			"kubelets more than 1 minors behind the newest apiserver v1.37.1 at A: n0 (v1.35.4)"},
		{"apiservers two minors apart", []answer{a("A", "v1.37.1"), a("B", "v1.35.0"), a("C", "v1.36.0")}, nil, 3,
			"apiservers more than one minor apart: B at v1.35.0, A at v1.37.1"},
		{"a development build is left out", []answer{a("A", "v0.0.0-master+$Format:%H$"), a("B", "v1.36.3")}, []string{"v1.37.1"}, 3,
			"kubelets newer than the oldest apiserver v1.36.3 at B"},
		{"nothing to judge by", []answer{a("A", "v0.0.0-master+$Format:%H$")}, []string{"v1.37.1"}, 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var nodes []corev1.Node
			for i, k := range tc.kubelets {
				nodes = append(nodes, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n" + string(rune('0'+i))}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: k}}})
			}
			err := judgeSkew(tc.servers, nodes, tc.maxSkew)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("want no objection, got %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, runbook.ErrBlocked) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("want blocked %q, got %v", tc.want, err)
			}
		})
	}
}

// TestRunningHosts: the apiservers counted as running are the hosts that renewed an identity
// lease within the last minute, each once; a stopped apiserver's lingering lease is not one.
func TestRunningHosts(t *testing.T) {
	t.Parallel()
	now := time.Now()
	lease := func(name, host string, ago time.Duration) coordinationv1.Lease {
		l := coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if host != "" {
			l.Labels[corev1.LabelHostname] = host
		}
		if ago >= 0 {
			l.Spec.RenewTime = &metav1.MicroTime{Time: now.Add(-ago)}
		}
		return l
	}
	got := runningHosts([]coordinationv1.Lease{
		lease("apiserver-a", "cp-1", 5*time.Second),
		lease("apiserver-b", "cp-2", 20*time.Second),
		lease("apiserver-b2", "cp-2", time.Second), // the same host twice (a restart): once
		lease("apiserver-c", "cp-3", 10*time.Minute),
		lease("apiserver-d", "", 3*time.Second),
		lease("apiserver-e", "cp-5", -1),
	}, now)
	if strings.Join(got, ",") != "apiserver-d,cp-1,cp-2" {
		t.Errorf("running hosts %v, want apiserver-d, cp-1, cp-2", got)
	}
}
