package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// NewDocsCommand returns the hidden `drydock docs DIR` (make docs): the command reference in
// Markdown, man pages, and the runbook reference generated from the JSON Schema.
func NewDocsCommand(root func() *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "docs DIR",
		Short:  "Write the command reference, man pages and the runbook reference into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			r := root()
			r.DisableAutoGenTag = true
			for _, sub := range []string{"commands", "man"} {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
					return err
				}
			}
			if err := doc.GenMarkdownTree(r, filepath.Join(dir, "commands")); err != nil {
				return fmt.Errorf("docs: %w", err)
			}
			if err := doc.GenManTree(r, &doc.GenManHeader{Title: "DRYDOCK", Section: "1", Source: "drydock"}, filepath.Join(dir, "man")); err != nil {
				return fmt.Errorf("docs: %w", err)
			}
			ref, err := runbook.Reference(steps.Registry)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "runbook-reference.md"), []byte(ref), 0o644)
		},
	}
}
