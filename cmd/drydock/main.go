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
	os.Exit(int(run(os.Args, genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})))
}

// run executes one command line and returns its exit code; main is the only caller of os.Exit.
func run(args []string, streams genericiooptions.IOStreams) exitcode.Code {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := NewRootCommand(streams, args[0])
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
