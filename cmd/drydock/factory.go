package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// Factory gives every command what comes from outside the process: the streams, the kubeconfig and
// the clients built from it, the clock, the prompter and the environment. Each function builds its
// value on first use and once, so a command that needs no cluster never reads a kubeconfig; a test
// replaces the functions it cares about (a fake clientset, a fixed clock, a scripted prompter).
type Factory struct {
	IOStreams genericiooptions.IOStreams
	// KubeFlags are kubectl's flags (--kubeconfig, --context, -n, --as, ...), on the root command.
	KubeFlags *genericclioptions.ConfigFlags

	// RESTConfig is the kubeconfig's client configuration; every client built from it retries reads
	// that fail transiently (kube.Resilient). No kubeconfig at all is a usage error (exit 2), not a
	// silent try of localhost:8080.
	RESTConfig func() (*rest.Config, error)
	// KubeClient is the typed client built from RESTConfig.
	KubeClient func() (kubernetes.Interface, error)
	// ContextName is the kubeconfig context in use ("" without one).
	ContextName func() string
	// HasKubeconfig says whether any cluster is configured (a kubeconfig context, --server, or in a pod).
	HasKubeconfig func() bool
	// KubeContexts lists the kubeconfig's contexts, sorted (drydock preflight --all-contexts).
	KubeContexts func() ([]string, error)
	// RESTConfigForContext is RESTConfig for another context of the same kubeconfig (the fleet's
	// clusters), with the same --as, --as-group and --request-timeout.
	RESTConfigForContext func(name string) (*rest.Config, error)
	Clock                func() clock.Clock
	Prompter             func() Prompter
	Getenv               func(string) string
}

// NewFactory is the Factory of the real process.
func NewFactory(streams genericiooptions.IOStreams, flags *genericclioptions.ConfigFlags) *Factory {
	f := &Factory{IOStreams: streams, KubeFlags: flags, Getenv: os.Getenv}
	f.HasKubeconfig = func() bool { return hasKubeconfig(flags, f.Getenv) }
	f.RESTConfig = sync.OnceValues(func() (*rest.Config, error) {
		if !f.HasKubeconfig() {
			return nil, exitcode.Invalid(errors.New("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config (drydock does not fall back to localhost:8080)"))
		}
		cfg, err := flags.ToRESTConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w (pass --kubeconfig or set KUBECONFIG)", err)
		}
		return kube.Resilient(kube.Rated(cfg)), nil
	})
	f.KubeClient = sync.OnceValues(func() (kubernetes.Interface, error) {
		cfg, err := f.RESTConfig()
		if err != nil {
			return nil, err
		}
		return kubernetes.NewForConfig(cfg)
	})
	f.ContextName = func() string {
		if flags.Context != nil && *flags.Context != "" {
			return *flags.Context
		}
		raw, err := flags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return ""
		}
		return raw.CurrentContext
	}
	f.KubeContexts = func() ([]string, error) {
		raw, err := flags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
		return slices.Sorted(maps.Keys(raw.Contexts)), nil
	}
	f.RESTConfigForContext = func(name string) (*rest.Config, error) {
		loader := flags.ToRawKubeConfigLoader()
		raw, err := loader.RawConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
		if _, ok := raw.Contexts[name]; !ok {
			return nil, fmt.Errorf("no context %q in the kubeconfig (kubectl config get-contexts lists them)", name)
		}
		over := &clientcmd.ConfigOverrides{CurrentContext: name}
		if flags.Impersonate != nil {
			over.AuthInfo.Impersonate = *flags.Impersonate
		}
		if flags.ImpersonateGroup != nil {
			over.AuthInfo.ImpersonateGroups = *flags.ImpersonateGroup
		}
		if flags.Timeout != nil {
			over.Timeout = *flags.Timeout
		}
		cfg, err := clientcmd.NewNonInteractiveClientConfig(raw, name, over, loader.ConfigAccess()).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("context %q: %w", name, err)
		}
		return kube.Resilient(kube.Rated(cfg)), nil
	}
	f.Clock = func() clock.Clock { return clock.RealClock{} }
	f.Prompter = sync.OnceValue(func() Prompter { return newTerminalPrompter(streams, f.Getenv) })
	return f
}

// hasKubeconfig: cli-runtime falls back to localhost:8080 when nothing is configured; drydock says so
// instead. A pod's service account (KUBERNETES_SERVICE_HOST) counts as configured.
func hasKubeconfig(flags *genericclioptions.ConfigFlags, getenv func(string) string) bool {
	if flags.APIServer != nil && *flags.APIServer != "" {
		return true
	}
	if getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	raw, err := flags.ToRawKubeConfigLoader().RawConfig()
	if clientcmd.IsEmptyConfig(err) {
		return false
	}
	return err != nil || len(raw.Contexts) > 0 // a broken kubeconfig is reported when it is loaded
}

// oldClusterFlag refuses --cluster=true|false, drydock's boolean before it gave --cluster back its
// kubectl meaning (the kubeconfig cluster to use), pointing at the flag that does it now.
func (f *Factory) oldClusterFlag(command, instead string) error {
	if f.KubeFlags == nil || f.KubeFlags.ClusterName == nil {
		return nil
	}
	if v := *f.KubeFlags.ClusterName; v == "true" || v == "false" {
		return exitcode.UsageError(fmt.Errorf("%s: --cluster=%s: --cluster has kubectl's meaning (the kubeconfig cluster to use); %s", command, v, instead))
	}
	return nil
}

// Prompter asks the person at the terminal, when there is one.
type Prompter interface {
	// Interactive: stdin and stderr are terminals, so a person can answer.
	Interactive() bool
	// Screen: stdout is a terminal too and TERM is not dumb, so the terminal UI may take the screen.
	Screen() bool
	// Confirm asks a yes/no question; only "y" or "yes" is a yes.
	Confirm(ctx context.Context, question string) (bool, error)
	// Decider answers pause points at the terminal (the terminal UI replaces it when it runs).
	Decider() runbook.Decider
}

type terminalPrompter struct {
	streams genericiooptions.IOStreams
	getenv  func(string) string
	in      *bufio.Reader
	mu      sync.Mutex
}

func newTerminalPrompter(streams genericiooptions.IOStreams, getenv func(string) string) *terminalPrompter {
	return &terminalPrompter{streams: streams, getenv: getenv, in: bufio.NewReader(streams.In)}
}

func (p *terminalPrompter) Interactive() bool {
	return isTerminal(p.streams.In) && isTerminal(p.streams.ErrOut)
}

func (p *terminalPrompter) Screen() bool {
	return p.Interactive() && isTerminal(p.streams.Out) && p.getenv("TERM") != "dumb"
}

// readLine reads one answer, giving up when ctx ends (Ctrl-C must still end drydock).
func (p *terminalPrompter) readLine(ctx context.Context) (string, error) {
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		l, err := p.in.ReadString('\n')
		ch <- answer{l, err}
	}()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case a := <-ch:
		if a.err != nil && a.line == "" {
			return "", a.err
		}
		return strings.ToLower(strings.TrimSpace(a.line)), nil
	}
}

func (p *terminalPrompter) Confirm(ctx context.Context, question string) (bool, error) {
	fmt.Fprintf(p.streams.ErrOut, "%s [y/N] ", question)
	a, err := p.readLine(ctx)
	if err != nil && ctx.Err() != nil {
		return false, err
	}
	return a == "y" || a == "yes", nil
}

func (p *terminalPrompter) Decider() runbook.Decider {
	return runbook.DeciderFunc(func(ctx context.Context, req runbook.PauseRequest) (runbook.Decision, error) {
		for {
			fmt.Fprintf(p.streams.ErrOut, "\nPause point %s step %q", req.When, req.Step)
			if req.Message != "" {
				fmt.Fprintf(p.streams.ErrOut, ": %s", req.Message)
			}
			if len(req.Done) > 0 {
				fmt.Fprintf(p.streams.ErrOut, "\n  done so far: %s", strings.Join(req.Done, ", "))
			}
			fmt.Fprintf(p.streams.ErrOut, "\n[c]ontinue, [r]oll back the completed steps, or [s]top here and resume later? ")
			a, err := p.readLine(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return runbook.Stop, ctx.Err()
				}
				return runbook.Stop, nil // end of input: nobody can answer
			}
			switch a {
			case "c", "continue":
				return runbook.Continue, nil
			case "r", "rollback", "roll back":
				// A destructive answer is asked again; the default is no.
				if ok, err := p.Confirm(ctx, "Roll back the completed steps, newest first?"); err != nil {
					return runbook.Stop, err
				} else if ok {
					return runbook.RollBack, nil
				}
			case "s", "stop":
				if ok, err := p.Confirm(ctx, fmt.Sprintf("Stop the run here (drydock resume %s asks again)?", req.RunID)); err != nil || ok {
					return runbook.Stop, err // stopping is also what an error does
				}
			}
		}
	})
}

func isTerminal(s any) bool {
	f, ok := s.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Options is what every command's options struct does, in this order: Complete fills what the
// flags do not (arguments, the factory), Validate checks without side effects, Run does the work.
type Options interface {
	Complete(f *Factory, cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// runE wires an options struct into cobra. runF, when not nil, replaces Run: the tests' seam to see
// what the flags and arguments became without a cluster.
func runE[O Options](f *Factory, o O, runF func(O) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(f, cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		if runF != nil {
			return runF(o)
		}
		return o.Run(cmd.Context())
	}
}

// out and errOut are the factory's streams (never os.Std*: tests give their own).
func (f *Factory) out() io.Writer    { return f.IOStreams.Out }
func (f *Factory) errOut() io.Writer { return f.IOStreams.ErrOut }
