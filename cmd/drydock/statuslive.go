package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// liveState is what `drydock status` reads beyond the journal about a run that has not finished:
// whether its process still runs, and which nodes it holds cordoned in the cluster.
type liveState struct {
	process  string   // "" when the run is not running
	cordoned []string // nodes whose cordon is this run's
	problem  string   // what could not be read, and why
}

// readLive fills a liveState for st: the process from the journal's holder on this machine, else
// from the cluster's lease; the cordons from the nodes' cordoned-by annotation. It never fails:
// what it cannot read it says.
func (o *StatusOptions) readLive(ctx context.Context, st *runbook.RunState) liveState {
	var live liveState
	if st.Status == runbook.RunRunning {
		live.process = processOf(st)
	}
	if !st.Status.Resumable() && st.Status != runbook.RunRollbackFailed {
		return live
	}
	cfg, err := o.f.RESTConfig()
	if err == nil && st.Cluster != "" && cfg.Host != st.Cluster {
		err = fmt.Errorf("the kubeconfig's cluster is %s, not the run's (%s)", cfg.Host, st.Cluster)
	}
	if err != nil {
		live.problem = "could not check the cluster for the nodes it holds cordoned: " + err.Error()
		return live
	}
	client, err := o.f.KubeClient()
	if err != nil {
		live.problem = "could not check the cluster for the nodes it holds cordoned: " + err.Error()
		return live
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		live.problem = "could not list the nodes it may hold cordoned: " + err.Error()
		return live
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable && n.Annotations[drain.AnnotationCordonedBy] == st.ID {
			live.cordoned = append(live.cordoned, n.Name)
		}
	}
	slices.Sort(live.cordoned)
	if st.Status == runbook.RunRunning && st.Holder != nil {
		if _, known := st.Holder.Alive(); !known {
			live.process = leaseSays(ctx, o, st)
		}
	}
	return live
}

// processOf says, from this machine, whether the process of a run journaled as running is alive.
func processOf(st *runbook.RunState) string {
	h := st.Holder
	alive, known := h.Alive()
	switch {
	case h == nil:
		return "unknown (the journal is older than the record of its process)"
	case known && alive:
		return fmt.Sprintf("alive: pid %d on this machine", h.PID)
	case known:
		return fmt.Sprintf("dead: pid %d on this machine is gone; `drydock resume %s` takes the run over at once", h.PID, st.ID)
	}
	return fmt.Sprintf("pid %d on %s: not this machine (the cluster's lock tells whether it still renews)", h.PID, h.Host)
}

// leaseSays tells from the cluster's lock whether the run's process (on another machine) renews it.
func leaseSays(ctx context.Context, o *StatusOptions, st *runbook.RunState) string {
	client, err := o.f.KubeClient()
	if err != nil {
		return processOf(st)
	}
	held, err := runbook.Holding(ctx, client)
	switch {
	case err != nil:
		return processOf(st) + "; " + err.Error()
	case held == nil || held.RunID != st.ID:
		return fmt.Sprintf("dead: pid %d on %s holds no lock any more; `drydock resume %s` takes the run over", st.Holder.PID, st.Holder.Host, st.ID)
	case held.Expired:
		return fmt.Sprintf("probably dead: pid %d on %s last renewed the lock %s ago; `drydock resume %s --steal-lock` takes it over once it stops changing",
			held.PID, held.Host, held.RenewedAgo.Round(time.Second), st.ID)
	}
	return fmt.Sprintf("alive: pid %d on %s renewed the lock %s ago", held.PID, held.Host, held.RenewedAgo.Round(time.Second))
}

// cordonFix is the command that finishes or undoes a node the run holds cordoned.
func cordonFix(st *runbook.RunState, node string) string {
	if st.KindOf() == "drain" {
		return fmt.Sprintf("`drydock resume %s` drains it again; `drydock uncordon %s` lets it go", st.ID, node)
	}
	return fmt.Sprintf("`drydock resume %s` finishes it; `drydock rollback %s` undoes it", st.ID, st.ID)
}
