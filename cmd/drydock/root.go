package main

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/drydock-dev/drydock/internal/exitcode"
)

// startedAnnotation marks a command whose PersistentPreRun ran, i.e. cobra accepted the command line.
const startedAnnotation = "drydock.dev/started"

// NewRootCommand builds the drydock command tree on the real process's Factory. argv0 decides the
// displayed name, so that installed as kubectl-drydock the help reads "kubectl drydock ...".
func NewRootCommand(streams genericiooptions.IOStreams, argv0 string) *cobra.Command {
	return NewRootCommandWith(NewFactory(streams, genericclioptions.NewConfigFlags(true)), argv0)
}

// NewRootCommandWith builds the command tree on f (tests give their own).
func NewRootCommandWith(f *Factory, argv0 string) *cobra.Command {
	streams := f.IOStreams

	root := &cobra.Command{
		Use:   "drydock",
		Short: "Upgrade a Kubernetes cluster without losing a request or a byte",
		Long: `drydock takes a Kubernetes cluster through an upgrade: it checks the cluster first, backs it up,
proves the backup restores, then drains a canary node and the node groups one at a time, pausing
where a person should look and rolling back when something goes wrong.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			if cmd.Annotations == nil {
				cmd.Annotations = map[string]string{}
			}
			cmd.Annotations[startedAnnotation] = "true"
		},
	}
	if name := filepath.Base(argv0); strings.HasPrefix(name, "kubectl-") {
		root.Annotations = map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl " + strings.TrimPrefix(name, "kubectl-"),
		}
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return exitcode.UsageError(err) })

	f.KubeFlags.AddFlags(root.PersistentFlags())

	root.AddCommand(
		NewVersionCommand(f, nil),
		NewValidateCommand(f, nil),
		NewSchemaCommand(f, nil),
		NewPlanCommand(f, nil),
		NewRehearseCommand(f, nil),
		NewRunCommand(f, nil),
		NewResumeCommand(f, nil),
		NewRollbackCommand(f, nil),
		NewRunsCommand(f, nil),
		NewStatusCommand(f, nil),
		NewDrainCommand(f, nil),
		NewUncordonCommand(f, nil),
		NewPreflightCommand(f, nil),
		NewDocsCommand(f, func() *cobra.Command { return NewRootCommand(streams, "drydock") }, nil),
	)
	registerCompletions(root, f)
	return root
}

func commandStarted(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations[startedAnnotation] == "true"
}
