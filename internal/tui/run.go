package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	tea "charm.land/bubbletea/v2"

	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/runbook"
)

// Options configure Run.
type Options struct {
	Info Info
	In   io.Reader
	Out  io.Writer // the terminal (stderr: data output stays on stdout)
	// Color styles the screen; off for NO_COLOR. (The terminal's colour profile is detected too.)
	Color bool
	// RequestPause asks the engine for a pause point after the current node.
	RequestPause func()
	// ApproveRelax tells the engine a person approved relaxing a budget (namespace/name).
	ApproveRelax func(pdb string)
	// Rollback undoes the run back to and including step `to`, after the work stopped.
	Rollback func(ctx context.Context, sink runbook.Sink, to string) error
	// QuitWhenDone closes the screen by itself when the work ends (drydock drain: nobody needs to
	// press q at 3 a.m.); the summary is printed after it.
	QuitWhenDone bool
	// ProgramOptions are passed to Bubble Tea (tests set the size and input).
	ProgramOptions []tea.ProgramOption
}

type sinkFunc func(runbook.Event)

func (f sinkFunc) Emit(ev runbook.Event) { f(ev) }

// ErrRolledBackOnRequest ends a run the person rolled back from the screen.
var ErrRolledBackOnRequest = fmt.Errorf("%w at your request", runbook.ErrRolledBack)

// Run shows the screen while work runs; work gets the sink and the decider to give the engine.
// The screen stays after the work ends, until the person quits; when ctx ends (SIGTERM) it closes
// by itself. It returns the work's error.
//
//nolint:contextcheck // the request loop and the rollback asked for on screen outlive the work context by design
func Run(ctx context.Context, opts Options, work func(ctx context.Context, sink runbook.Sink, decider runbook.Decider) error) error {
	requests := make(chan Request, 8)
	model := New(opts.Info, requests, opts.Color)
	popts := append([]tea.ProgramOption{tea.WithInput(opts.In), tea.WithOutput(opts.Out), tea.WithoutSignalHandler()}, opts.ProgramOptions...)
	p := tea.NewProgram(model, popts...)

	workCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sink := sinkFunc(func(ev runbook.Event) { p.Send(EventMsg{Event: ev}) })
	decider := runbook.DeciderFunc(func(dctx context.Context, req runbook.PauseRequest) (runbook.Decision, error) {
		reply := make(chan runbook.Decision, 1)
		p.Send(PauseMsg{Req: req, Reply: reply})
		select {
		case d := <-reply:
			return d, nil
		case <-dctx.Done():
			return runbook.Stop, dctx.Err()
		}
	})

	var (
		mu         sync.Mutex
		rollbackTo string
		workErr    error
	)
	reqCtx, stopRequests := context.WithCancel(context.Background())
	defer stopRequests()
	go func() {
		for {
			select {
			case <-reqCtx.Done():
				return
			case r := <-requests:
				switch r.Kind {
				case RequestAbort:
					cancel()
				case RequestPauseNext:
					if opts.RequestPause != nil {
						opts.RequestPause()
					}
				case RequestRelax:
					if opts.ApproveRelax != nil {
						opts.ApproveRelax(r.PDB)
					}
				case RequestRollback:
					mu.Lock()
					rollbackTo = r.To
					mu.Unlock()
					cancel()
				}
			}
		}
	}()

	done := make(chan struct{})
	go func() {
		defer close(done)
		err := work(workCtx, sink, decider)
		mu.Lock()
		to := rollbackTo
		mu.Unlock()
		if to != "" && opts.Rollback != nil && ctx.Err() == nil {
			if rerr := opts.Rollback(context.WithoutCancel(ctx), sink, to); rerr != nil {
				err = fmt.Errorf("roll back to step %q: %w", to, rerr)
			} else {
				err = fmt.Errorf("run %w (back to step %q)", ErrRolledBackOnRequest, to)
			}
		}
		mu.Lock()
		workErr = err
		mu.Unlock()
		p.Send(DoneMsg{Err: err})
		if ctx.Err() != nil || opts.QuitWhenDone {
			p.Quit() // SIGTERM or Ctrl-C from outside, or a drain: no one to press q
		}
	}()

	final, perr := p.Run()
	cancel() // the screen is gone: a run still going stops, resumable
	<-done
	mu.Lock()
	defer mu.Unlock()
	if m, ok := final.(Model); ok && m.Status != "" && opts.Out != nil {
		// What the screen showed last stays on the terminal: the summary, then where the run stands.
		if m.Summary != nil {
			fmt.Fprintf(opts.Out, "drydock: %s\n", printer.Format(m.Summary))
			for _, l := range printer.DescribeSummary(m.Summary) {
				fmt.Fprintf(opts.Out, "drydock: %s\n", strings.TrimSpace(l))
			}
		}
		fmt.Fprintf(opts.Out, "drydock: run %s %s: %s\n", m.RunID, m.Status, m.Message)
	}
	if opts.Out != nil {
		printRefusal(opts.Out, workErr)
	}
	if workErr == nil && perr != nil && !errors.Is(perr, tea.ErrProgramKilled) {
		return fmt.Errorf("terminal UI: %w", perr)
	}
	return workErr
}

// printRefusal leaves on the terminal what the screen showed of a plan that refused the run: the
// blockers and their fixes (the error that follows counts them as "listed above"; the screen that
// showed them is gone, and scrollback keeps only what is printed after it).
func printRefusal(out io.Writer, err error) {
	var bpe *runbook.BlockedPlanError
	if !errors.As(err, &bpe) || !bpe.Listed {
		return
	}
	for _, l := range printer.DescribeBlocked(bpe.Plans) {
		fmt.Fprintf(out, "drydock: plan: %s\n", l)
	}
}
