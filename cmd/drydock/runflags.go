package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/notify"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/tui"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/drain"
)

// StateFlags place the run journals: on this machine and in the cluster.
type StateFlags struct {
	StateDir       string
	StateNamespace string
}

// AddFlags adds --state-dir and --state-namespace.
func (s *StateFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.StateDir, "state-dir", runbook.DefaultStateDir(), "local directory of the run journals")
	cmd.Flags().StringVar(&s.StateNamespace, "state-namespace", runbook.DefaultStateNamespace, "namespace of the journal ConfigMaps (to find a run started on another machine)")
}

// RunFlags are the flags of the commands that run the engine: run, resume, rollback and drain.
type RunFlags struct {
	Output       string
	Yes          bool
	StealLock    bool
	NoMirror     bool
	NoTUI        bool
	LockDuration time.Duration
	KeepRuns     int
	// Notify are webhooks (URL, slack=URL, cloudevents=URL) told how the run ends.
	Notify []string
	StateFlags

	// outputSet: -o was given, so plain lines were asked for even at a terminal.
	outputSet bool
}

// AddFlags adds the run flags to cmd.
func (r *RunFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&r.Output, "output", "o", "text", "event output: text (plain lines) or json (one JSON object per event and line)")
	cmd.Flags().BoolVarP(&r.Yes, "yes", "y", false, "answer every pause point with continue (needed to pass one when nobody can answer)")
	cmd.Flags().BoolVar(&r.StealLock, "steal-lock", false, "take the cluster lock from a run whose lease has expired")
	cmd.Flags().BoolVar(&r.NoMirror, "no-mirror", false, "keep the journal on this machine only (no ConfigMap in the cluster)")
	cmd.Flags().BoolVar(&r.NoTUI, "no-tui", false, "print plain lines even on a terminal (the screen is used only when stdin, stdout and stderr are terminals)")
	cmd.Flags().DurationVar(&r.LockDuration, "lock-duration", runbook.DefaultLockDuration, "duration of the cluster Lease; renewed every third of it")
	_ = cmd.Flags().MarkHidden("lock-duration")
	cmd.Flags().IntVar(&r.KeepRuns, "keep-runs", runbook.DefaultKeepRuns, "finished runs whose journal ConfigMap is kept in the cluster; older ones are pruned when a run ends")
	cmd.Flags().StringArrayVar(&r.Notify, "notify", nil, "tell this webhook how the run ends (paused, blocked, failed, rolled back, succeeded): URL for a CloudEvents JSON body, slack=URL for Slack text; repeatable; a failing webhook never fails the run")
	r.StateFlags.AddFlags(cmd)
}

// complete records what cobra knows beyond the values: whether -o was given.
func (r *RunFlags) complete(cmd *cobra.Command) { r.outputSet = cmd.Flags().Changed("output") }

// Validate checks the run flags; no side effects.
func (r *RunFlags) Validate() error {
	switch r.Output {
	case "text", "json":
	default:
		return exitcode.UsageError(fmt.Errorf("unknown output %q: use -o text or -o json", r.Output))
	}
	if r.KeepRuns < 1 {
		return exitcode.UsageError(fmt.Errorf("--keep-runs must be at least 1 (the run's own journal); `drydock runs --prune --keep-runs 0` removes every finished run's copy"))
	}
	for _, v := range r.Notify {
		if _, err := notify.Parse(v); err != nil {
			return exitcode.UsageError(err)
		}
	}
	if r.LockDuration < 3*time.Second {
		return exitcode.UsageError(fmt.Errorf("--lock-duration must be at least 3s (the lease is renewed every third of it)"))
	}
	return nil
}

// crashAtEnv names the test hook that kills drydock right after its k-th journal write, so that
// the crash-point tests can stop a run at every write it makes and prove that one resume finishes it.
const crashAtEnv = "DRYDOCK_CRASH_AT_JOURNAL_WRITE"

// runner is what a command that runs the engine builds in Run: the client and the engine with its
// sink and decider, from the factory and the run flags.
type runner struct {
	f      *Factory
	flags  *RunFlags
	client kubernetes.Interface
	engine *runbook.Engine
	// notifier tells the webhooks (--notify and the runbook's notify:) how the run ended.
	notifier *notify.Notifier
	// target is the runbook's target version, for the screen's header.
	target string
}

func newRunner(f *Factory, flags *RunFlags) (*runner, error) {
	cfg, err := f.RESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := f.KubeClient()
	if err != nil {
		return nil, err
	}
	r := &runner{f: f, flags: flags, client: client, notifier: &notify.Notifier{
		Warn: func(err error) { fmt.Fprintf(f.errOut(), "drydock: warning: %v\n", err) },
	}}
	for _, v := range flags.Notify {
		t, _ := notify.Parse(v) // Validate checked it
		r.notifier.Targets = append(r.notifier.Targets, t)
	}
	r.engine = &runbook.Engine{
		Registry:     steps.Registry,
		Kube:         client,
		REST:         cfg,
		StateDir:     flags.StateDir,
		NoMirror:     flags.NoMirror,
		LockDuration: flags.LockDuration,
		StealLock:    flags.StealLock,
		KeepRuns:     flags.KeepRuns,
		Cluster:      cfg.Host,
		Context:      f.ContextName(),
		Decider:      r.decider(),
		Sink:         r.sink(),
	}
	if k, err := strconv.Atoi(f.Getenv(crashAtEnv)); err == nil && k > 0 {
		r.engine.AfterJournalWrite = func(n int) {
			if n == k {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // as kill -9 would: no cleanup at all
			}
		}
	}
	return r, nil
}

func (r *runner) sink() runbook.Sink {
	if r.flags.Output == "json" {
		return printer.NewJSON(r.f.out())
	}
	return printer.NewText(r.f.out())
}

func (r *runner) decider() runbook.Decider {
	switch p := r.f.Prompter(); {
	case r.flags.Yes:
		return runbook.AlwaysContinue
	case p.Interactive():
		return p.Decider()
	}
	return runbook.StopAtPause
}

// useTUI: the terminal UI when a person is at a terminal and plain lines were not asked for.
func (r *runner) useTUI() bool {
	return r.f.Prompter().Screen() && !r.flags.NoTUI && !r.flags.outputSet
}

// checkTarget compares the runbook's target with the live cluster.
func (r *runner) checkTarget(rb *runbook.Runbook) error {
	v, err := r.client.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("get server version: %w", err)
	}
	if err := runbook.CheckTarget(rb.Spec.TargetVersion, v.GitVersion); err != nil {
		return exitcode.Invalid(fmt.Errorf("runbook %q: %w", rb.Metadata.Name, err))
	}
	return nil
}

// notifyFrom adds the runbook's notify: webhooks. The runbook holds a reference to each URL (an
// environment variable, a file, a Secret's key), read when the run has ended.
func (r *runner) notifyFrom(rb *runbook.Runbook) {
	for i, n := range rb.Spec.Notify {
		ref := n.URL
		r.notifier.Targets = append(r.notifier.Targets, notify.Target{Format: n.Format, On: n.On,
			Name: fmt.Sprintf("spec.notify[%d] (%s)", i, ref),
			Resolve: func(ctx context.Context) (string, error) {
				return ref.Resolve(ctx, r.client, r.f.Getenv)
			}})
	}
}

// execute runs work under the terminal UI when there is a person at a terminal, else with the
// plain or JSON-lines sink, then tells the webhooks how it ended. last returns the run's state
// (for a rollback asked for on the screen, and the notification).
func (r *runner) execute(ctx context.Context, command string, work func(ctx context.Context) error, last func() *runbook.RunState) error {
	repairBudgets(ctx, r.f, r.client, false)
	err := r.screen(ctx, command, work, last)
	err = sayBlockers(err, r.flags.Output)
	r.notifyEnd(last(), err) //nolint:contextcheck // the webhooks are told even when the run's context has ended (bounded by their own timeout)
	return err
}

// sayBlockers makes a plan's refusal name each blocker and its fix itself when the plan went out
// as JSON (-o json: the run.planned event), not as lines a person reads above the error.
func sayBlockers(err error, output string) error {
	var bpe *runbook.BlockedPlanError
	if output != "json" || !errors.As(err, &bpe) || !bpe.Listed {
		return err
	}
	prefix, ok := strings.CutSuffix(err.Error(), bpe.Error()) // "runbook \"drain\": "
	if !ok {
		return err
	}
	full := *bpe
	full.Listed = false
	return fmt.Errorf("%s%w", prefix, &full)
}

// notifyEnd sends how the run ended: blocked before anything moved (the run may not even exist),
// else the run's final status; then waits for the webhooks a little (they never fail the run).
func (r *runner) notifyEnd(st *runbook.RunState, err error) {
	if len(r.notifier.Targets) == 0 {
		return
	}
	n := notify.Notification{Cluster: r.engine.Context, Time: r.f.Clock().Now()}
	if n.Cluster == "" {
		n.Cluster = r.engine.Cluster
	}
	if st != nil {
		n.RunID, n.Runbook, n.Status, n.Message = st.ID, st.Runbook, string(st.Status), st.Message
		n.Outcome = notify.Outcome(st.Status)
	}
	if errors.Is(err, runbook.ErrBlocked) && (st == nil || st.Status == runbook.RunRunning || st.Status == "") {
		n.Outcome, n.Status, n.Message = notify.Blocked, "blocked", err.Error()
		var bpe *runbook.BlockedPlanError
		if errors.As(err, &bpe) {
			full := *bpe
			full.Listed = false // nobody reading the webhook saw the plan: say each blocker
			n.Message = full.Error()
		}
	}
	if n.Outcome == "" {
		return // interrupted, or nothing ran
	}
	r.notifier.Send(n)
	r.notifier.Wait(30 * time.Second)
}

func (r *runner) screen(ctx context.Context, command string, work func(ctx context.Context) error, last func() *runbook.RunState) error {
	if !r.useTUI() {
		return work(ctx)
	}
	info := tui.Info{Command: command, Context: r.engine.Context, Lock: runbook.Operator(), Target: r.target}
	if v, err := r.client.Discovery().ServerVersion(); err == nil {
		info.Server = v.GitVersion
	}
	return tui.Run(ctx, tui.Options{
		Info: info, In: r.f.IOStreams.In, Out: r.f.errOut(), Color: r.f.Getenv("NO_COLOR") == "",
		RequestPause: r.engine.RequestPause,
		ApproveRelax: r.engine.ApproveRelax,
		QuitWhenDone: command == "drain",
		Rollback: func(ctx context.Context, sink runbook.Sink, to string) error {
			st := last()
			if st == nil {
				return errors.New("the run had not started")
			}
			r.engine.Sink = sink
			_, err := r.engine.Rollback(ctx, st, to)
			return err
		},
	}, func(ctx context.Context, sink runbook.Sink, decider runbook.Decider) error {
		r.engine.Sink = sink
		if !r.flags.Yes {
			r.engine.Decider = decider
		}
		return work(ctx)
	})
}

// confirm asks question at the terminal unless --yes; without a terminal it refuses with what
// (exit 2), and a "no" aborts (exit 4).
func confirm(ctx context.Context, f *Factory, yes bool, what, question string) error {
	if yes {
		return nil
	}
	p := f.Prompter()
	if !p.Interactive() {
		return exitcode.UsageError(fmt.Errorf("%s: pass --yes to confirm when nobody can answer", what))
	}
	ok, err := p.Confirm(ctx, question)
	if err != nil {
		return err
	}
	if !ok {
		return exitcode.With(exitcode.Aborted, fmt.Errorf("%s: not confirmed", what))
	}
	return nil
}

// loadRunbook reads and checks a runbook file; every problem is an invalid-input error (exit 2).
func loadRunbook(path string) (*runbook.Runbook, error) {
	rb, err := runbook.Load(path, steps.Registry)
	if err != nil {
		var ps runbook.Problems
		if errors.As(err, &ps) {
			return nil, exitcode.Invalid(fmt.Errorf("invalid runbook:\n%w", err))
		}
		return nil, exitcode.Invalid(err)
	}
	return rb, nil
}

// repairBudgets restores the PodDisruptionBudgets a drydock run relaxed (allowBudgetRelax) whose
// expiry has passed: a run killed before it could restore them leaves them to the next drydock
// command. Every command that runs steps calls it first (a warning when it cannot: it never stops
// the command); `drydock runs --repair` calls it with list, which also names those not expired yet.
func repairBudgets(ctx context.Context, f *Factory, client kubernetes.Interface, list bool) error {
	restored, pending, err := drain.RepairExpired(ctx, client, f.Clock().Now())
	for _, o := range restored {
		fmt.Fprintf(f.errOut(), "drydock: %s (it expired at %s)\n", o, o.Expires().Local().Format(time.DateTime))
	}
	if list {
		for _, o := range pending {
			fmt.Fprintf(f.out(), "PDB %s is relaxed by run %s until %s (%s)\n", o.PDB, o.Run, o.Expires().Local().Format(time.DateTime), o.Record.What)
		}
		fmt.Fprintf(f.out(), "%d relaxed budget(s) restored, %d not expired yet\n", len(restored), len(pending))
	}
	if !list {
		sayRepairError(f, err)
	}
	return err
}
