// Command drydock takes a Kubernetes cluster through an upgrade: pre-flight checks, a backup that is
// proven to restore, a canary node, then the node groups one at a time.
//
// Installed as kubectl-drydock it also runs as a kubectl plugin: `kubectl drydock ...`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/drydock-dev/drydock/internal/exitcode"
)

func main() {
	// client-go logs through klog; drydock says what matters through its own events and errors.
	klog.SetLogger(logr.Discard())
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	ctx, stop := interrupts(streams, func(code exitcode.Code) { os.Exit(int(code)) })
	defer stop()
	os.Exit(int(run(ctx, os.Args, streams)))
}

// interrupts returns a context that the first Ctrl-C or SIGTERM cancels: the command stops, cleans
// up within a bounded time and leaves its run resumable. A second one exits at once through exit:
// every journal write is atomic, so the run is resumable from where it was.
func interrupts(streams genericiooptions.IOStreams, exit func(exitcode.Code)) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("%v: %w", sig, context.Canceled))
			fmt.Fprintf(streams.ErrOut, "drydock: %v: stopping and cleaning up; press Ctrl-C again to exit at once (the run stays resumable)\n", sig)
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			fmt.Fprintf(streams.ErrOut, "drydock: %v again: exiting now without cleaning up; `drydock runs` lists the run, `drydock resume` continues it, and nodes it cordoned stay cordoned until then\n", sig)
			exit(exitcode.Interrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// run executes one command line and returns its exit code; main is the only caller of os.Exit.
func run(ctx context.Context, args []string, streams genericiooptions.IOStreams) exitcode.Code {

	root := NewRootCommand(streams, args[0]) //nolint:contextcheck // cobra gives ctx to each command (ExecuteContextC below)
	root.SetArgs(args[1:])
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.For(err)
	if ctx.Err() != nil {
		code = exitcode.Interrupted
	}
	if !commandStarted(cmd) && code == exitcode.Failure {
		// cobra refused the command line before any command ran: unknown command, flag or arguments.
		code = exitcode.Usage
	}
	if code == exitcode.Paused {
		// Not an error: the run waits for a person. The run's own last line says how to go on.
		fmt.Fprintf(streams.ErrOut, "drydock: %v (exit %d)\n", err, code)
		return code
	}
	fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
	if code == exitcode.Usage && cmd != nil && (exitcode.WantsHelp(err) || !commandStarted(cmd)) {
		fmt.Fprintf(streams.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}
