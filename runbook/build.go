package runbook

import (
	"encoding/json"
	"fmt"
	"slices"

	"sigs.k8s.io/yaml"
)

// Build completes a runbook made in Go rather than read from a file (`drydock drain` makes its
// one-step runbook so): apiVersion and kind, each step's type and `with:` from its Step, and the
// runbook's text, which the journal keeps as it keeps a file's so that resume reads both the same
// way. Then Validate's rules apply, as to a file. source names it in problems and the journal.
func Build(source string, rb Runbook, reg Registry) (*Runbook, error) {
	rb.APIVersion, rb.Kind = APIVersion, KindRunbook
	rb.Spec.Steps = slices.Clone(rb.Spec.Steps)
	for i := range rb.Spec.Steps {
		s := &rb.Spec.Steps[i]
		if s.Step == nil {
			return nil, fmt.Errorf("runbook %q: step %q has no Step", rb.Metadata.Name, s.Name)
		}
		if s.Type == "" {
			s.Type = s.Step.Name()
		}
		if _, ok := reg.Lookup(s.Type); !ok || s.Type != s.Step.Name() {
			return nil, fmt.Errorf("runbook %q: step %q: kind %q is not registered as %q", rb.Metadata.Name, s.Name, s.Step.Name(), s.Type)
		}
		with, err := json.Marshal(s.Step)
		if err != nil {
			return nil, fmt.Errorf("runbook %q: step %q: encode settings: %w", rb.Metadata.Name, s.Name, err)
		}
		s.With = with
	}
	text, err := yaml.Marshal(rb)
	if err != nil {
		return nil, fmt.Errorf("runbook %q: encode: %w", rb.Metadata.Name, err)
	}
	rb.Source = &Source{Path: source, Text: text}
	if ps := Validate(&rb, reg); len(ps) > 0 {
		return nil, ps
	}
	return &rb, nil
}
