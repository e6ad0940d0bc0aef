package controlplane

// The gate after each member: every apiserver, each at its own address, and the skew policy
// judged across all of them.
//
// Where the apiservers are. The gate dials the addresses the step's settings give (each member's
// endpoint): they are what the operator knows each member by — the host just upgraded, the
// address its serving certificate is issued for and the firewall lets drydock reach. A load
// balancer's address (the kubeconfig's server) proves nothing about one member: it answers from
// whichever backend its health check likes, so a member left at the old version, or not ready,
// hides behind a healthy one. Two in-cluster witnesses were weighed, and neither is dialed:
//   - the `kubernetes` EndpointSlice in default lists the addresses the apiservers advertise, but
//     they are often unreachable from where drydock runs (a private network, NAT; the simulated
//     cluster advertises 192.0.2.2), two apiservers on one host overwrite each other's port there,
//     and a stopped apiserver's address stays until its master lease expires;
//   - the apiserver identity Leases in kube-system (apiserver.kubernetes.io/identity=kube-apiserver,
//     one per host, renewed every 10 s) carry neither an address (only with the alpha peer proxy)
//     nor a version, but each is an apiserver's own heartbeat: before the first member the gate
//     counts the hosts that renewed one lately, and when more apiservers run than it has addresses
//     for, it says so, naming them (the step still runs: a managed control plane has no member
//     address to give).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/runbook"
)

// identityLeaseSelector selects the apiservers' identity leases in kube-system.
const identityLeaseSelector = "apiserver.kubernetes.io/identity=kube-apiserver"

// endpoint is one apiserver address the gate checks, and the members it is the address of.
type endpoint struct {
	URL     string
	Members []string
	client  kubernetes.Interface
}

func (e *endpoint) String() string {
	if len(e.Members) == 1 {
		return e.URL + " (member " + e.Members[0] + ")"
	}
	return e.URL + " (members " + strings.Join(e.Members, ", ") + ")"
}

// endpoints are the members' own addresses, in member order; members that name none share the
// kubeconfig's server.
func (s *Step) endpoints(env *runbook.Env) ([]*endpoint, error) {
	var out []*endpoint
	byURL := map[string]*endpoint{}
	for _, m := range s.Members {
		url := strings.TrimSuffix(m.Endpoint, "/")
		if url == "" {
			url = strings.TrimSuffix(env.REST.Host, "/")
		}
		e := byURL[url]
		if e == nil {
			cfg := rest.CopyConfig(env.REST)
			cfg.Host = url
			cfg.Timeout = 10 * time.Second // an address that swallows packets must not hold the gate
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return nil, fmt.Errorf("apiserver %s: %w", url, err)
			}
			e = &endpoint{URL: url, client: client}
			byURL[url] = e
			out = append(out, e)
		}
		e.Members = append(e.Members, m.Name)
	}
	return out, nil
}

// answer is what one apiserver said at its own address.
type answer struct {
	Who     string // the endpoint, with its members
	Version string // its /version
	Problem string // why it is not whole; "" when it is
}

// probe asks the apiserver at its own address for /version and /readyz; upgraded says a member it
// is the address of has been upgraded, so it must answer at the target.
func probe(ctx context.Context, e *endpoint, target string, upgraded bool) answer {
	a := answer{Who: e.String()}
	v, err := e.client.Discovery().ServerVersion()
	if err != nil {
		a.Problem = fmt.Sprintf("apiserver %s: /version: %v", e, err)
		return a
	}
	a.Version = v.GitVersion
	if upgraded && !sameRelease(v.GitVersion, target) {
		a.Problem = fmt.Sprintf("apiserver %s: /version answers %s, not %s", e, v.GitVersion, target)
		return a
	}
	body, err := e.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || string(body) != "ok" {
		a.Problem = fmt.Sprintf("apiserver %s: /readyz: %s %v", e, body, err)
	}
	return a
}

// proveWhole waits until every apiserver answers at its own address, ready, those of the members
// upgraded so far (the first upgraded+1) at the target, and the controller-manager and the
// scheduler renewed their leases after the member was upgraded; then the skew policy is judged
// across every apiserver.
func (s *Step) proveWhole(ctx context.Context, env *runbook.Env, upgraded int, since time.Time) error {
	eps, err := s.endpoints(env)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, m := range s.Members[:upgraded+1] {
		done[m.Name] = true
	}
	wctx, cancel := context.WithTimeout(ctx, s.readyTimeout())
	defer cancel()
	var problems []string
	var answers []answer
	err = wait.PollUntilContextCancel(wctx, time.Second, true, func(ctx context.Context) (bool, error) {
		problems, answers = nil, nil
		for _, e := range eps {
			a := probe(ctx, e, env.Target, slices.ContainsFunc(e.Members, func(m string) bool { return done[m] }))
			if a.Problem != "" {
				problems = append(problems, a.Problem)
			}
			answers = append(answers, a)
		}
		if len(problems) == 0 {
			if p := leasesRenewed(ctx, env, since); p != "" {
				problems = append(problems, p)
			}
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("not whole again within %s: %s", s.readyTimeout(), strings.Join(problems, "; "))
	}
	nodes, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes for the skew check: %w", err)
	}
	return judgeSkew(answers, nodes.Items, s.maxSkew())
}

// leasesRenewed says what is wrong with the controller-manager's and the scheduler's leader
// leases ("" when both were renewed since the member was upgraded).
func leasesRenewed(ctx context.Context, env *runbook.Env, since time.Time) string {
	for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
		l, err := env.Kube.CoordinationV1().Leases("kube-system").Get(ctx, lease, metav1.GetOptions{})
		if err != nil {
			return fmt.Sprintf("lease kube-system/%s: %v", lease, err)
		}
		if l.Spec.RenewTime == nil || l.Spec.RenewTime.Time.Before(since) {
			return fmt.Sprintf("%s has not renewed its lease since the member was upgraded", lease)
		}
	}
	return ""
}

// judgeSkew is the version-skew policy across every running apiserver
// (https://kubernetes.io/releases/version-skew-policy/): the apiservers at most one minor apart;
// no kubelet newer than the OLDEST apiserver (a kubelet reaches any of them through the load
// balancer, so each must support it); none more than maxSkew minors older than the NEWEST
// (upstream's own example: apiservers at 1.32 and 1.31 support kubelets 1.31, 1.30 and 1.29 —
// a mixed control plane narrows the range from both ends). An apiserver that reports no release
// (a development build, v0.0.0) cannot be judged and is left out.
func judgeSkew(answers []answer, nodes []corev1.Node, maxSkew int) error {
	type server struct {
		answer
		v *version.Version
	}
	var servers []server
	for _, a := range answers {
		if v, err := version.ParseGeneric(a.Version); err == nil && v.Major() > 0 {
			servers = append(servers, server{a, v})
		}
	}
	if len(servers) == 0 {
		return nil
	}
	slices.SortStableFunc(servers, func(a, b server) int {
		switch {
		case a.v.LessThan(b.v):
			return -1
		case b.v.LessThan(a.v):
			return 1
		}
		return 0
	})
	oldest, newest := servers[0], servers[len(servers)-1]
	if newest.v.Major() != oldest.v.Major() || newest.v.Minor()-oldest.v.Minor() > 1 {
		return runbook.Blocked(fmt.Errorf("apiservers more than one minor apart: %s at %s, %s at %s: the skew policy allows one minor between apiservers; bring every member to one minor first",
			oldest.Who, oldest.Version, newest.Who, newest.Version))
	}
	var tooNew, tooOld []string
	for _, n := range nodes {
		kv := n.Status.NodeInfo.KubeletVersion
		k, err := version.ParseGeneric(kv)
		if err != nil || k.Major() != oldest.v.Major() {
			continue
		}
		switch {
		case k.Minor() > oldest.v.Minor():
			tooNew = append(tooNew, n.Name+" ("+kv+")")
		case int(newest.v.Minor())-int(k.Minor()) > maxSkew:
			tooOld = append(tooOld, n.Name+" ("+kv+")")
		}
	}
	slices.Sort(tooNew)
	slices.Sort(tooOld)
	switch {
	case len(tooNew) > 0:
		return runbook.Blocked(fmt.Errorf("kubelets newer than the oldest apiserver %s at %s: %s: a kubelet must not be newer than any apiserver it can reach; upgrade that member before these nodes join",
			oldest.Version, oldest.Who, strings.Join(tooNew, ", ")))
	case len(tooOld) > 0:
		return runbook.Blocked(fmt.Errorf("kubelets more than %d minors behind the newest apiserver %s at %s: %s: upgrade them before the next control-plane minor",
			maxSkew, newest.Version, newest.Who, strings.Join(tooOld, ", ")))
	}
	return nil
}

// inventory says, before the first member, when more apiservers run (hosts that renewed an
// identity lease in the last minute) than the step has addresses to check them at; an inventory
// it could not take is said too. Neither stops the step: a managed control plane has no member
// address to give.
func (s *Step) inventory(ctx context.Context, env *runbook.Env) {
	eps, err := s.endpoints(env)
	if err != nil {
		return // Run fails on it at the first member, naming the address
	}
	leases, err := env.Kube.CoordinationV1().Leases("kube-system").List(ctx, metav1.ListOptions{LabelSelector: identityLeaseSelector})
	if err != nil {
		env.Find(runbook.Finding{Severity: runbook.SeverityWarning, Object: "kube-apiserver",
			Message: "could not count the running apiservers (their identity leases in kube-system): " + err.Error(),
			Hint:    "grant list on leases in kube-system, and give each member its endpoint so that each apiserver is checked at its own address"})
		return
	}
	hosts := runningHosts(leases.Items, time.Now())
	if len(hosts) <= len(eps) {
		return
	}
	var urls []string
	for _, e := range eps {
		urls = append(urls, e.URL)
	}
	env.Find(runbook.Finding{Severity: runbook.SeverityWarning, Object: "kube-apiserver",
		Message: fmt.Sprintf("%d apiservers are running (identity leases of %s) but the step has %d address(es) to check them at (%s): an apiserver behind a shared address is seen only when the load balancer picks it",
			len(hosts), strings.Join(hosts, ", "), len(urls), strings.Join(urls, ", ")),
		Hint: "give each member its endpoint (members[].endpoint: https://HOST:6443, that member's own apiserver)"})
}

// runningHosts are the hosts whose apiserver renewed its identity lease within the last minute
// (they renew every 10 s; a stopped apiserver's lease lingers for an hour before it is collected).
func runningHosts(leases []coordinationv1.Lease, now time.Time) []string {
	var hosts []string
	for _, l := range leases {
		if l.Spec.RenewTime == nil || now.Sub(l.Spec.RenewTime.Time) > time.Minute {
			continue
		}
		h := l.Labels[corev1.LabelHostname]
		if h == "" {
			h = l.Name
		}
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
