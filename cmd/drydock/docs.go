package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// DocsOptions are the options of the hidden `drydock docs DIR`.
type DocsOptions struct {
	Dir  string
	root func() *cobra.Command
}

// NewDocsCommand returns the hidden `drydock docs DIR` (make docs): the command reference in
// Markdown, man pages, the runbook reference generated from the JSON Schema, and the pre-flight
// report's JSON Schema. runF, when not
// nil, replaces Run (tests).
func NewDocsCommand(f *Factory, root func() *cobra.Command, runF func(*DocsOptions) error) *cobra.Command {
	o := &DocsOptions{root: root}
	return &cobra.Command{
		Use:    "docs DIR",
		Short:  "Write the command reference, man pages and the runbook reference into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE:   runE(f, o, runF),
	}
}

// Complete takes the directory.
func (o *DocsOptions) Complete(_ *Factory, _ *cobra.Command, args []string) error {
	o.Dir = args[0]
	return nil
}

// Validate has nothing to check.
func (o *DocsOptions) Validate() error { return nil }

// Run writes the documents.
func (o *DocsOptions) Run(context.Context) error {
	r := o.root()
	r.DisableAutoGenTag = true
	for _, sub := range []string{"commands", "man"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	if err := doc.GenMarkdownTree(r, filepath.Join(o.Dir, "commands")); err != nil {
		return fmt.Errorf("docs: %w", err)
	}
	if err := doc.GenManTree(r, &doc.GenManHeader{Title: "DRYDOCK", Section: "1", Source: "drydock"}, filepath.Join(o.Dir, "man")); err != nil {
		return fmt.Errorf("docs: %w", err)
	}
	ref, err := runbook.Reference(steps.Registry)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "runbook-reference.md"), []byte(ref), 0o644); err != nil {
		return err
	}
	schema, err := preflight.ReportSchema()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.Dir, "preflight-report.schema.json"), append(schema, '\n'), 0o644)
}
