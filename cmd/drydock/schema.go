package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// SchemaOptions are the options of `drydock schema` (none).
type SchemaOptions struct{ f *Factory }

// NewSchemaCommand returns `drydock schema`. runF, when not nil, replaces Run (tests).
func NewSchemaCommand(f *Factory, runF func(*SchemaOptions) error) *cobra.Command {
	o := &SchemaOptions{}
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the runbook JSON Schema (for editors: yaml-language-server)",
		Example: `  drydock schema > runbook.schema.json
  # then, first line of a runbook:
  # yaml-language-server: $schema=./runbook.schema.json`,
		Args: cobra.NoArgs,
		RunE: runE(f, o, runF),
	}
}

// Complete keeps the factory.
func (o *SchemaOptions) Complete(f *Factory, _ *cobra.Command, _ []string) error {
	o.f = f
	return nil
}

// Validate has nothing to check.
func (o *SchemaOptions) Validate() error { return nil }

// Run prints the schema.
func (o *SchemaOptions) Run(context.Context) error {
	b, err := runbook.Schema(steps.Registry)
	if err != nil {
		return err
	}
	_, err = o.f.out().Write(b)
	return err
}
