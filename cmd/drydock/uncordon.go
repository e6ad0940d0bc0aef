package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// UncordonOptions are the options of `drydock uncordon NODE...`.
type UncordonOptions struct {
	Nodes []string

	f *Factory
}

// NewUncordonCommand returns `drydock uncordon NODE...`. runF, when not nil, replaces Run (tests).
func NewUncordonCommand(f *Factory, runF func(*UncordonOptions) error) *cobra.Command {
	o := &UncordonOptions{}
	return &cobra.Command{
		Use:   "uncordon NODE...",
		Short: "Mark nodes schedulable again and clear drydock's marks on them",
		Example: `  drydock uncordon node-7
  drydock uncordon node-7 node-8`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(f, o, runF),
	}
}

// Complete takes the node names.
func (o *UncordonOptions) Complete(f *Factory, _ *cobra.Command, args []string) error {
	o.f, o.Nodes = f, args
	return nil
}

// Validate has nothing to check beyond cobra's argument count.
func (o *UncordonOptions) Validate() error { return nil }

// Run uncordons each node and clears drydock's annotations on it.
func (o *UncordonOptions) Run(ctx context.Context) error {
	client, err := o.f.KubeClient()
	if err != nil {
		return err
	}
	for _, name := range o.Nodes {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return runbook.Invalid(fmt.Errorf("uncordon node %q: not found: `kubectl get nodes` lists them", name))
		}
		if err != nil {
			return fmt.Errorf("uncordon node %q: %w", name, err)
		}
		if by := n.Annotations[drain.AnnotationCordonedBy]; by != "" {
			fmt.Fprintf(o.f.errOut(), "node %s was cordoned by drydock run %s\n", name, by)
		}
		patch := `{"metadata":{"annotations":{"` + drain.AnnotationCordonedBy + `":null,"` + drain.AnnotationRunID + `":null}},"spec":{"unschedulable":false}}`
		if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("uncordon node %q: %w", name, err)
		}
		fmt.Fprintf(o.f.out(), "node/%s uncordoned\n", name)
	}
	return nil
}
