package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// ValidateOptions are the options of `drydock validate FILE...`.
type ValidateOptions struct {
	Output string
	Paths  []string

	f *Factory
}

// NewValidateCommand returns `drydock validate FILE...`. runF, when not nil, replaces Run (tests).
func NewValidateCommand(f *Factory, runF func(*ValidateOptions) error) *cobra.Command {
	o := &ValidateOptions{}
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check runbook files: syntax, schema, step settings and order (exit 2 when invalid)",
		Example: `  drydock validate upgrade.yaml
  drydock validate runbooks/*.yaml -o json   # CI: every problem with its file, line and column`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(f, o, runF),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "text or json")
	return cmd
}

// Complete takes the files.
func (o *ValidateOptions) Complete(f *Factory, _ *cobra.Command, args []string) error {
	o.f, o.Paths = f, args
	return nil
}

// Validate checks the flags; no side effects.
func (o *ValidateOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return exitcode.UsageError(fmt.Errorf("validate: unknown output %q: use -o text or -o json", o.Output))
	}
	return nil
}

// validateResult is one file's line of `drydock validate -o json`.
type validateResult struct {
	File     string            `json:"file"`
	Valid    bool              `json:"valid"`
	Problems []runbook.Problem `json:"problems,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// Run checks every file; any invalid one makes the exit code 2.
func (o *ValidateOptions) Run(ctx context.Context) error {
	var results []validateResult
	invalid := 0
	for _, path := range o.Paths {
		if err := ctx.Err(); err != nil {
			return err // Ctrl-C or SIGTERM between files
		}
		r := validateResult{File: path, Valid: true}
		rb, err := loadInterruptibly(ctx, path)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			invalid++
			r.Valid = false
			var ps runbook.Problems
			if errors.As(err, &ps) {
				r.Problems = ps
			} else {
				r.Error = err.Error()
			}
			if o.Output == "text" {
				fmt.Fprintln(o.f.errOut(), err)
			}
		} else if o.Output == "text" {
			fmt.Fprintf(o.f.out(), "%s: valid runbook %q, %d steps, target %s\n", path, rb.Metadata.Name, len(rb.Spec.Steps), rb.Spec.TargetVersion)
		}
		results = append(results, r)
	}
	if o.Output == "json" {
		b, _ := json.MarshalIndent(results, "", "  ")
		fmt.Fprintln(o.f.out(), string(b))
	}
	if invalid > 0 {
		return exitcode.Invalid(fmt.Errorf("validate: %d of %d runbooks invalid", invalid, len(o.Paths)))
	}
	return nil
}

// loadInterruptibly loads a runbook, giving up when ctx ends (a FIFO or a hung network file
// system never answers: Ctrl-C or SIGTERM must still end drydock).
func loadInterruptibly(ctx context.Context, path string) (*runbook.Runbook, error) {
	type loaded struct {
		rb  *runbook.Runbook
		err error
	}
	ch := make(chan loaded, 1)
	go func() {
		rb, err := runbook.Load(path, steps.Registry)
		ch <- loaded{rb, err}
	}()
	select {
	case l := <-ch:
		return l.rb, l.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
