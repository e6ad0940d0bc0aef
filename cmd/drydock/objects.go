package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// ObjectPrintFlags are the output flags of a command whose output is an object (runs, plan, drain
// --dry-run): cli-runtime's printers, as kubectl's -o, for json, yaml, jsonpath=… and go-template=…;
// the default, "text", is the command's own human output.
type ObjectPrintFlags struct {
	genericclioptions.PrintFlags
	output string
}

func newObjectPrintFlags() *ObjectPrintFlags {
	p := &ObjectPrintFlags{output: "text"}
	p.OutputFormat = &p.output
	p.JSONYamlPrintFlags = genericclioptions.NewJSONYamlPrintFlags()
	p.TemplatePrinterFlags = genericclioptions.NewKubeTemplatePrintFlags()
	return p
}

// AddFlags adds -o and the template flags.
func (p *ObjectPrintFlags) AddFlags(cmd *cobra.Command) {
	p.TemplatePrinterFlags.AddFlags(cmd)
	cmd.Flags().StringVarP(p.OutputFormat, "output", "o", "text", "output format: text, "+strings.Join(p.AllowedFormats(), ", "))
	p.OutputFlagSpecified = func() bool { return cmd.Flag("output").Changed }
}

// Text says the command's own human output was asked for.
func (p *ObjectPrintFlags) Text() bool { return p.output == "text" }

// Validate refuses an output format no printer knows; no side effects.
func (p *ObjectPrintFlags) Validate() error {
	if p.Text() {
		return nil
	}
	if _, err := p.ToPrinter(); err != nil {
		if genericclioptions.IsNoCompatiblePrinterError(err) {
			return exitcode.UsageError(fmt.Errorf("unknown output format %q: use text, %s", p.output, strings.Join(p.AllowedFormats(), ", ")))
		}
		return exitcode.UsageError(fmt.Errorf("-o %s: %w", p.output, err))
	}
	return nil
}

// Print writes obj with the printer -o asked for.
func (p *ObjectPrintFlags) Print(obj runtime.Object, w io.Writer) error {
	pr, err := p.ToPrinter()
	if err != nil {
		return err
	}
	return pr.PrintObj(obj, w)
}

// The objects drydock prints. Each has drydock's apiVersion and its kind, so a consumer knows the
// shape it reads (a new field is added; a changed shape gets a new version).
const (
	KindRunList     = "RunList"
	KindRunbookPlan = "RunbookPlan"
	KindDrainPlan   = "DrainPlan"
)

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: runbook.APIVersion, Kind: kind}
}

// RunList is `drydock runs -o json|yaml`.
type RunList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []*runbook.RunState `json:"items"`
}

// DeepCopyObject copies the list (runtime.Object).
func (l *RunList) DeepCopyObject() runtime.Object { return deepCopy(l) }

// RunbookPlan is `drydock plan -o json|yaml`.
type RunbookPlan struct {
	metav1.TypeMeta `json:",inline"`
	Runbook         string             `json:"runbook"`
	Target          string             `json:"targetVersion"`
	Cluster         string             `json:"cluster"`
	Steps           []runbook.StepPlan `json:"steps"`
	// Nodes is the whole-runbook plan: every node step's nodes in order, by batch, with blockers.
	Nodes []runbook.NodePlan `json:"nodes,omitempty"`
	// Forecast is how long the run should take: node steps from the plan and durations measured on
	// the cluster, other steps from the last finished run of this runbook on this cluster.
	Forecast *runbook.RunForecast `json:"forecast,omitempty"`
}

// DeepCopyObject copies the plan (runtime.Object).
func (p *RunbookPlan) DeepCopyObject() runtime.Object { return deepCopy(p) }

// DrainPlan is `drydock drain --dry-run -o json|yaml`.
type DrainPlan struct {
	metav1.TypeMeta `json:",inline"`
	*drain.Plan     `json:",inline"`
}

// DeepCopyObject copies the plan (runtime.Object).
func (p *DrainPlan) DeepCopyObject() runtime.Object { return deepCopy(p) }

// deepCopy copies an output object through its JSON form: they are plain data, printed once.
func deepCopy[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain data always encodes
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}
