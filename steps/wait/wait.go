// Package wait is the `wait` step: wait, by watching, until a condition holds.
//
//   - name: nodes-back
//     type: wait
//     timeout: 10m
//     with: {for: kubeletVersion, nodes: "drydock.dev/group=general"}
//
// Conditions: nodesReady (every selected node Ready), kubeletVersion (every selected node reports
// the target version, or `version`), podsReady (every pod in `namespaces` Ready or completed).
package wait

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "wait",
	Description: "wait, by watching, until nodes are Ready, report a kubelet version, or pods are Ready",
	Phase:       runbook.PhaseAny,
	New:         func() runbook.Step { return &Step{} },
}

// Conditions.
const (
	NodesReady     = "nodesReady"
	KubeletVersion = "kubeletVersion"
	PodsReady      = "podsReady"
)

// Step is the wait step's settings.
type Step struct {
	// For is the condition.
	For string `json:"for" jsonschema:"enum=nodesReady,enum=kubeletVersion,enum=podsReady"`
	// Nodes is a label selector for nodesReady and kubeletVersion (default: every node).
	Nodes string `json:"nodes,omitempty"`
	// Version for kubeletVersion (default: the runbook's targetVersion).
	Version string `json:"version,omitempty"`
	// Namespaces for podsReady (default: every namespace).
	Namespaces []string `json:"namespaces,omitempty"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// ValidateSettings checks the selector and version.
func (s *Step) ValidateSettings() []runbook.FieldError {
	var errs []runbook.FieldError
	if _, err := labels.Parse(s.Nodes); err != nil {
		errs = append(errs, runbook.FieldError{Field: "nodes", Message: err.Error(), Hint: "a label selector as in kubectl -l"})
	}
	if s.Version != "" {
		if _, err := version.ParseGeneric(s.Version); err != nil {
			errs = append(errs, runbook.FieldError{Field: "version", Message: fmt.Sprintf("%q is not a Kubernetes version", s.Version), Hint: "write it as v1.37.2"})
		}
	}
	if s.For != PodsReady && len(s.Namespaces) > 0 {
		errs = append(errs, runbook.FieldError{Field: "namespaces", Message: "only podsReady uses namespaces"})
	}
	if s.For == PodsReady && s.Nodes != "" {
		errs = append(errs, runbook.FieldError{Field: "nodes", Message: "podsReady does not use nodes; use namespaces"})
	}
	return errs
}

// Plan says what the step waits for.
func (s *Step) Plan(_ context.Context, env *runbook.Env) ([]string, error) {
	return []string{"wait until " + s.describe(env)}, nil
}

func (s *Step) describe(env *runbook.Env) string {
	sel := "every node"
	if s.Nodes != "" {
		sel = "every node matching " + s.Nodes
	}
	switch s.For {
	case NodesReady:
		return sel + " is Ready"
	case KubeletVersion:
		return fmt.Sprintf("%s is Ready with kubelet %s", sel, s.want(env))
	default:
		ns := "every namespace"
		if len(s.Namespaces) > 0 {
			ns = "namespaces " + strings.Join(s.Namespaces, ", ")
		}
		return "every pod in " + ns + " is Ready or completed"
	}
}

func (s *Step) want(env *runbook.Env) string {
	if s.Version != "" {
		return s.Version
	}
	return env.Target
}

// Run watches until the condition holds, reporting progress when it changes.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	if env.Kube == nil {
		return errors.New("needs a cluster")
	}
	if deadline, ok := ctx.Deadline(); ok {
		env.Countdown("waiting until "+s.describe(env), deadline) // gives up then (the step's timeout)
	} else {
		env.Progress("waiting until "+s.describe(env), 0, 0)
	}
	if s.For == PodsReady {
		if len(s.Namespaces) == 0 {
			return s.until(ctx, env, "", podsReady)
		}
		for _, ns := range s.Namespaces {
			if err := s.until(ctx, env, ns, podsReady); err != nil {
				return fmt.Errorf("namespace %s: %w", ns, err)
			}
		}
		return nil
	}
	want := s.want(env)
	var wantV *version.Version
	if s.For == KubeletVersion {
		v, err := version.ParseGeneric(want)
		if err != nil {
			return fmt.Errorf("version %q: %w", want, err)
		}
		wantV = v
	}
	return s.until(ctx, env, "", func(objs []any) (bool, []string) {
		var bad []string
		for _, o := range objs {
			n := o.(*corev1.Node)
			if !kube.NodeReady(n) {
				bad = append(bad, n.Name+" (NotReady)")
				continue
			}
			if wantV != nil {
				got, err := version.ParseGeneric(n.Status.NodeInfo.KubeletVersion)
				if err != nil || got.Major() != wantV.Major() || got.Minor() != wantV.Minor() || (strings.Count(want, ".") == 2 && got.Patch() != wantV.Patch()) {
					bad = append(bad, fmt.Sprintf("%s (kubelet %s)", n.Name, n.Status.NodeInfo.KubeletVersion))
				}
			}
		}
		return len(objs) > 0, bad
	})
}

func podsReady(objs []any) (bool, []string) {
	var bad []string
	for _, o := range objs {
		p := o.(*corev1.Pod)
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if !kube.PodReady(p) {
			bad = append(bad, p.Namespace+"/"+p.Name)
		}
	}
	return true, bad
}

// until watches nodes (namespace "") or pods until check passes over the whole set.
// check returns whether the set is acceptable at all (e.g. not empty) and what is still wrong.
func (s *Step) until(ctx context.Context, env *runbook.Env, ns string, check func([]any) (bool, []string)) error {
	var lw *cache.ListWatch
	var obj runtime.Object
	if s.For == PodsReady {
		pods := env.Kube.CoreV1().Pods(ns)
		obj = &corev1.Pod{}
		lw = &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return pods.List(ctx, o) },
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return pods.Watch(ctx, o)
			},
		}
	} else {
		nodes := env.Kube.CoreV1().Nodes()
		sel := s.Nodes
		obj = &corev1.Node{}
		lw = &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.LabelSelector = sel
				return nodes.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.LabelSelector = sel
				return nodes.Watch(ctx, o)
			},
		}
	}
	var store cache.Store
	lastReport := ""
	evaluate := func() (bool, error) {
		ok, bad := check(store.List())
		sort.Strings(bad)
		report := fmt.Sprintf("%d of %d ready", len(store.List())-len(bad), len(store.List()))
		if len(bad) > 0 {
			report += "; waiting for " + strings.Join(first(bad, 5), ", ")
		}
		if report != lastReport {
			env.Progress(report, len(store.List())-len(bad), len(store.List()))
			lastReport = report
		}
		return ok && len(bad) == 0, nil
	}
	_, err := watchtools.UntilWithSync(ctx, lw, obj,
		func(st cache.Store) (bool, error) { store = st; return evaluate() },
		func(watch.Event) (bool, error) { return evaluate() },
	)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w; still %s", context.Cause(ctx), lastReport)
		}
		return err
	}
	return nil
}

func first(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}

// Access says what the step needs: it watches nodes (nodesReady, kubeletVersion) or pods (podsReady).
func (s *Step) Access() []runbook.Access {
	if s.For == "podsReady" {
		var out []runbook.Access
		nss := s.Namespaces
		if len(nss) == 0 {
			nss = []string{""}
		}
		for _, ns := range nss {
			out = append(out, runbook.Access{Verb: "list", Resource: "pods", Namespace: ns, Why: "wait watches the pods until they are Ready"},
				runbook.Access{Verb: "watch", Resource: "pods", Namespace: ns, Why: "wait watches the pods until they are Ready"})
		}
		return out
	}
	return []runbook.Access{
		{Verb: "list", Resource: "nodes", Why: "wait watches the nodes"},
		{Verb: "watch", Resource: "nodes", Why: "wait watches the nodes"},
	}
}
