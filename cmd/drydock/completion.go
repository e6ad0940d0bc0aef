package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/runbook"
)

// Shell completion: node names (from the cluster, within a few seconds or not at all), run ids
// and step names (from this machine's journals), check names and output formats.

// completeNodes completes node names; an unreachable cluster gives no names, quickly.
func completeNodes(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		client, err := f.KubeClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
		defer cancel()
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range list.Items {
			if strings.HasPrefix(n.Name, prefix) {
				state := "schedulable"
				if n.Spec.Unschedulable {
					state = "cordoned"
				}
				out = append(out, cobra.CompletionWithDesc(n.Name, state+", kubelet "+n.Status.NodeInfo.KubeletVersion))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeRuns completes the ids of this machine's runs (newest first) that want accepts, once.
func completeRuns(state *StateFlags, want func(runbook.RunStatus) bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		runs, err := runbook.ListRuns(state.StateDir)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, r := range runs {
			if strings.HasPrefix(r.ID, prefix) && (want == nil || want(r.Status)) {
				out = append(out, cobra.CompletionWithDesc(r.ID, string(r.Status)+", "+r.KindOf()+" "+r.Runbook))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}

// completeSteps completes the step names of the run named in args (or the newest run).
func completeSteps(state *StateFlags) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var st *runbook.RunState
		if len(args) > 0 {
			st, _ = runbook.ReadRun(state.StateDir, args[0])
		} else if runs, _ := runbook.ListRuns(state.StateDir); len(runs) > 0 {
			st = runs[0]
		}
		if st == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, s := range st.Steps {
			if strings.HasPrefix(s.Name, prefix) {
				out = append(out, cobra.CompletionWithDesc(s.Name, s.Kind+", "+string(s.Status)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}

// completeRunbooks completes YAML files.
var completeRunbooks cobra.CompletionFunc = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeValues completes a flag's fixed values; for a list flag, the value after the last comma.
func completeValues(values ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		head := ""
		if i := strings.LastIndex(prefix, ","); i >= 0 {
			head, prefix = prefix[:i+1], prefix[i+1:]
		}
		var out []cobra.Completion
		for _, v := range values {
			if strings.HasPrefix(v, prefix) {
				out = append(out, head+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// registerCompletions wires the completions that need no options into the command tree (run ids
// and step names are wired where the options are, in resume, rollback and status).
func registerCompletions(root *cobra.Command, f *Factory) {
	events := completeValues("text", "json")
	objects := completeValues("text", "json", "yaml", "jsonpath=", "go-template=")
	for _, cmd := range root.Commands() {
		flag := func(name string, fn cobra.CompletionFunc) {
			if cmd.Flags().Lookup(name) != nil {
				_ = cmd.RegisterFlagCompletionFunc(name, fn)
			}
		}
		switch cmd.Name() {
		case "drain":
			cmd.ValidArgsFunction = completeNodes(f)
			flag("output", completeValues("text", "json", "yaml", "jsonpath="))
		case "uncordon":
			cmd.ValidArgsFunction = completeNodes(f)
		case "run":
			cmd.ValidArgsFunction = completeRunbooks
			flag("output", events)
		case "resume", "rollback":
			flag("output", events)
		case "plan":
			cmd.ValidArgsFunction = completeRunbooks
			flag("output", objects)
		case "validate":
			cmd.ValidArgsFunction = completeRunbooks
			flag("output", events)
		case "runs":
			flag("status", completeValues(runStatuses...))
			flag("kind", completeValues("run", "drain"))
			flag("output", objects)
		case "status":
			flag("output", objects)
		case "preflight":
			flag("checks", completeValues(preflight.Names()...))
			flag("output", completeValues(preflight.Formats...))
			flag("fail-on", completeValues(preflight.FailOnValues...))
		case "version":
			flag("output", completeValues("json", "yaml"))
		}
	}
}
