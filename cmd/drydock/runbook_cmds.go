package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/tui"
	"github.com/drydock-dev/drydock/internal/velero"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// RunOptions are shared by run, resume, rollback, plan and runs.
type RunOptions struct {
	Output     string
	Yes        bool
	DryRun     bool
	StealLock  bool
	NoMirror   bool
	StateDir   string
	StateNS    string
	LockPeriod time.Duration
	To         string
	NoTUI      bool
	KeepRuns   int
	runFlags   bool // the command has addRunFlags' flags

	kube        *genericclioptions.ConfigFlags
	client      kubernetes.Interface
	engine      *runbook.Engine
	interactive bool
	genericiooptions.IOStreams
}

func (o *RunOptions) addRunFlags(cmd *cobra.Command) {
	o.runFlags = true
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "event output: text (plain lines) or json (one JSON object per event and line)")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "answer every pause point with continue (needed to pass one when nobody can answer)")
	cmd.Flags().BoolVar(&o.StealLock, "steal-lock", false, "take the cluster lock from a run whose lease has expired")
	cmd.Flags().BoolVar(&o.NoMirror, "no-mirror", false, "keep the journal on this machine only (no ConfigMap in the cluster)")
	cmd.Flags().BoolVar(&o.NoTUI, "no-tui", false, "print plain lines even on a terminal (the screen is used only when stdin, stdout and stderr are terminals)")
	cmd.Flags().DurationVar(&o.LockPeriod, "lock-duration", runbook.DefaultLockDuration, "duration of the cluster Lease; renewed every third of it")
	_ = cmd.Flags().MarkHidden("lock-duration")
	cmd.Flags().IntVar(&o.KeepRuns, "keep-runs", runbook.DefaultKeepRuns, "finished runs whose journal ConfigMap is kept in the cluster; older ones are pruned when a run ends")
	o.addStateFlags(cmd)
}

func (o *RunOptions) addStateFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.StateDir, "state-dir", runbook.DefaultStateDir(), "local directory of the run journals")
	cmd.Flags().StringVar(&o.StateNS, "state-namespace", runbook.DefaultStateNamespace, "namespace of the journal ConfigMaps (to find a run started on another machine)")
}

func kubeClient(flags *genericclioptions.ConfigFlags) (kubernetes.Interface, error) {
	cfg, err := restConfig(flags)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// restConfig loads the kubeconfig the flags name; every client drydock builds from it retries
// reads that fail transiently (kube.Resilient).
func restConfig(flags *genericclioptions.ConfigFlags) (*rest.Config, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w (pass --kubeconfig or set KUBECONFIG)", err)
	}
	return kube.Resilient(cfg), nil
}

// Complete builds the clients and the engine.
func (o *RunOptions) Complete(needCluster bool) error {
	o.interactive = isTerminal(o.In) && isTerminal(o.ErrOut)
	if !needCluster {
		return nil
	}
	cfg, err := restConfig(o.kube)
	if err != nil {
		return err
	}
	o.client, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	raw, _ := o.kube.ToRawKubeConfigLoader().RawConfig()
	ctxName := raw.CurrentContext
	if o.kube.Context != nil && *o.kube.Context != "" {
		ctxName = *o.kube.Context
	}
	o.engine = &runbook.Engine{
		Registry:     steps.Registry,
		Kube:         o.client,
		REST:         cfg,
		StateDir:     o.StateDir,
		NoMirror:     o.NoMirror,
		LockDuration: o.LockPeriod,
		StealLock:    o.StealLock,
		KeepRuns:     o.KeepRuns,
		Cluster:      cfg.Host,
		Context:      ctxName,
		Decider:      o.decider(),
		Sink:         o.sink(),
	}
	if k, err := strconv.Atoi(os.Getenv(crashAtEnv)); err == nil && k > 0 {
		o.engine.AfterJournalWrite = func(n int) {
			if n == k {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // as kill -9 would: no cleanup at all
			}
		}
	}
	return nil
}

// crashAtEnv names the test hook that kills drydock right after its k-th journal write, so that
// the crash-point tests can stop a run at every write it makes and prove that one resume finishes it.
const crashAtEnv = "DRYDOCK_CRASH_AT_JOURNAL_WRITE"

// Validate checks flags; no side effects.
func (o *RunOptions) Validate() error {
	switch o.Output {
	case "text", "json":
	default:
		return exitcode.UsageError(fmt.Errorf("unknown output %q: use -o text or -o json", o.Output))
	}
	if o.runFlags && o.KeepRuns < 1 {
		return exitcode.UsageError(fmt.Errorf("--keep-runs must be at least 1 (the run's own journal); `drydock runs --prune --keep-runs 0` removes every finished run's copy"))
	}
	return nil
}

// useTUI: the terminal UI when a person is at a terminal and plain lines were not asked for.
func (o *RunOptions) useTUI(cmd *cobra.Command) bool {
	return o.interactive && isTerminal(o.Out) && !o.NoTUI && !cmd.Flags().Changed("output") && os.Getenv("TERM") != "dumb"
}

// execute runs work under the terminal UI when there is a person at a terminal, else with the
// plain or JSON-lines sink. last returns the run's state for a rollback asked for on the screen.
func (o *RunOptions) execute(cmd *cobra.Command, command string, work func(ctx context.Context) error, last func() *runbook.RunState) error {
	ctx := cmd.Context()
	if !o.useTUI(cmd) {
		return work(ctx)
	}
	info := tui.Info{Command: command, Context: o.engine.Context, Lock: runbook.Operator()}
	if v, err := o.client.Discovery().ServerVersion(); err == nil {
		info.Server = v.GitVersion
	}
	return tui.Run(ctx, tui.Options{
		Info: info, In: o.In, Out: o.ErrOut, Color: os.Getenv("NO_COLOR") == "",
		RequestPause: o.engine.RequestPause,
		Rollback: func(ctx context.Context, sink runbook.Sink, to string) error {
			st := last()
			if st == nil {
				return errors.New("the run had not started")
			}
			o.engine.Sink = sink
			_, err := o.engine.Rollback(ctx, st, to)
			return err
		},
	}, func(ctx context.Context, sink runbook.Sink, decider runbook.Decider) error {
		o.engine.Sink = sink
		if !o.Yes {
			o.engine.Decider = decider
		}
		return work(ctx)
	})
}

func (o *RunOptions) sink() runbook.Sink {
	if o.Output == "json" {
		return printer.NewJSON(o.Out)
	}
	return printer.NewText(o.Out)
}

func (o *RunOptions) decider() runbook.Decider {
	switch {
	case o.Yes:
		return runbook.AlwaysContinue
	case o.interactive:
		return &promptDecider{in: bufio.NewReader(o.In), out: o.ErrOut}
	}
	return runbook.StopAtPause
}

func isTerminal(s any) bool {
	f, ok := s.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// promptDecider asks at the terminal. (The TUI replaces it when there is one.)
type promptDecider struct {
	in  *bufio.Reader
	out io.Writer
}

func (p *promptDecider) Decide(ctx context.Context, req runbook.PauseRequest) (runbook.Decision, error) {
	for {
		fmt.Fprintf(p.out, "\nPause point %s step %q", req.When, req.Step)
		if req.Message != "" {
			fmt.Fprintf(p.out, ": %s", req.Message)
		}
		if len(req.Done) > 0 {
			fmt.Fprintf(p.out, "\n  done so far: %s", strings.Join(req.Done, ", "))
		}
		fmt.Fprintf(p.out, "\n[c]ontinue, [r]oll back the completed steps, or [s]top here and resume later? ")
		type answer struct {
			line string
			err  error
		}
		ch := make(chan answer, 1)
		go func() { l, err := p.in.ReadString('\n'); ch <- answer{l, err} }()
		select {
		case <-ctx.Done():
			return runbook.Stop, ctx.Err()
		case a := <-ch:
			if a.err != nil && a.line == "" {
				return runbook.Stop, nil
			}
			switch strings.ToLower(strings.TrimSpace(a.line)) {
			case "c", "continue":
				return runbook.Continue, nil
			case "r", "rollback", "roll back":
				return runbook.RollBack, nil
			case "s", "stop":
				return runbook.Stop, nil
			}
		}
	}
}

// prepare loads the runbook, builds the clients, checks the flags and the target against the cluster.
func (o *RunOptions) prepare(path string) (*runbook.Runbook, error) {
	rb, err := loadRunbook(path)
	if err != nil {
		return nil, err
	}
	if err := o.Complete(true); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return rb, o.checkTarget(rb)
}

// checkTarget compares the runbook's target with the live cluster.
func (o *RunOptions) checkTarget(rb *runbook.Runbook) error {
	v, err := o.client.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("get server version: %w", err)
	}
	if err := runbook.CheckTarget(rb.Spec.TargetVersion, v.GitVersion); err != nil {
		return exitcode.Invalid(fmt.Errorf("runbook %q: %w", rb.Metadata.Name, err))
	}
	return nil
}

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

// NewValidateCommand returns `drydock validate FILE...`.
func NewValidateCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check runbook files: syntax, schema, step settings and order (exit 2 when invalid)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return exitcode.UsageError(fmt.Errorf("validate: unknown output %q: use -o text or -o json", output))
			}
			type result struct {
				File     string            `json:"file"`
				Valid    bool              `json:"valid"`
				Problems []runbook.Problem `json:"problems,omitempty"`
				Error    string            `json:"error,omitempty"`
			}
			var results []result
			invalid := 0
			for _, path := range args {
				if err := cmd.Context().Err(); err != nil {
					return err // Ctrl-C or SIGTERM between files
				}
				r := result{File: path, Valid: true}
				rb, err := loadInterruptibly(cmd.Context(), path)
				if cmd.Context().Err() != nil {
					return cmd.Context().Err()
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
					if output == "text" {
						fmt.Fprintln(streams.ErrOut, err)
					}
				} else if output == "text" {
					fmt.Fprintf(streams.Out, "%s: valid runbook %q, %d steps, target %s\n", path, rb.Metadata.Name, len(rb.Spec.Steps), rb.Spec.TargetVersion)
				}
				results = append(results, r)
			}
			if output == "json" {
				b, _ := json.MarshalIndent(results, "", "  ")
				fmt.Fprintln(streams.Out, string(b))
			}
			if invalid > 0 {
				return exitcode.Invalid(fmt.Errorf("validate: %d of %d runbooks invalid", invalid, len(args)))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// NewSchemaCommand returns `drydock schema`.
func NewSchemaCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the runbook JSON Schema (for editors: yaml-language-server)",
		Example: `  drydock schema > runbook.schema.json
  # then, first line of a runbook:
  # yaml-language-server: $schema=./runbook.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := runbook.Schema(steps.Registry)
			if err != nil {
				return err
			}
			_, err = streams.Out.Write(b)
			return err
		},
	}
}

// NewPlanCommand returns `drydock plan FILE`.
func NewPlanCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RunOptions{kube: kube, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Resolve a runbook against the live cluster and say what each step will do, changing nothing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rb, err := o.prepare(args[0])
			if err != nil {
				return err
			}
			o.engine.Sink = nil
			plans, err := o.engine.Plan(cmd.Context(), rb)
			if err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			if o.Output == "json" {
				b, _ := json.MarshalIndent(plans, "", "  ")
				fmt.Fprintln(o.Out, string(b))
				return nil
			}
			fmt.Fprintf(o.Out, "Runbook %q: target %s on %s\n", rb.Metadata.Name, rb.Spec.TargetVersion, o.engine.Cluster)
			for i, p := range plans {
				flags := []string{p.Kind, "timeout " + p.Timeout.String()}
				if p.Pause != "" && p.Pause != runbook.PauseNone {
					flags = append(flags, "pause "+p.Pause)
				}
				if p.CanRollback {
					flags = append(flags, "can roll back")
				}
				fmt.Fprintf(o.Out, "%d. %s (%s)\n", i+1, p.Name, strings.Join(flags, ", "))
				for _, a := range p.Actions {
					fmt.Fprintf(o.Out, "     %s\n", a)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "text or json")
	return cmd
}

// NewRunCommand returns `drydock run FILE`.
func NewRunCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RunOptions{kube: kube, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run an upgrade runbook: journaled, locked, with pause points and rollback",
		Long: `Run an upgrade runbook. Every step transition is journaled (locally and in a ConfigMap), the
cluster is locked with a Lease for the whole run, pause points ask a person (or stop the run when
nobody can answer: exit 5, continue with 'drydock resume'), and Ctrl-C leaves the run resumable.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rb, err := o.prepare(args[0])
			if err != nil {
				return err
			}
			if o.DryRun {
				plans, err := o.engine.Plan(cmd.Context(), rb)
				if err != nil {
					return err
				}
				for _, p := range plans {
					for _, a := range append([]string{"(" + p.Kind + ")"}, p.Actions...) {
						o.engine.Sink.Emit(&runbook.StepProgress{Meta: runbook.Meta{Time: time.Now(), RunID: "dry-run", Step: p.Name}, Message: "would " + a})
					}
				}
				return nil
			}
			var st *runbook.RunState
			return o.execute(cmd, "run", func(ctx context.Context) error {
				st, err = o.engine.Start(ctx, rb)
				return err
			}, func() *runbook.RunState { return st })
		},
	}
	o.addRunFlags(cmd)
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "say what each step would do, change nothing")
	return cmd
}

// openRun builds the clients, checks the flags and loads the run named by args (see findRun).
func (o *RunOptions) openRun(ctx context.Context, args []string, want func(runbook.RunStatus) bool) (*runbook.RunState, error) {
	if err := o.Complete(true); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o.findRun(ctx, args, want)
}

// findRun loads a run's journal: locally, else from the cluster; with no id, the newest resumable local run.
func (o *RunOptions) findRun(ctx context.Context, args []string, want func(runbook.RunStatus) bool) (*runbook.RunState, error) {
	if len(args) == 0 {
		runs, err := runbook.ListRuns(o.StateDir)
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			if want(r.Status) {
				return r, nil
			}
		}
		return nil, exitcode.Invalid(fmt.Errorf("no run to continue in %s: name one (`drydock runs` lists them)", o.StateDir))
	}
	st, err := runbook.ReadRun(o.StateDir, args[0])
	if errors.Is(err, runbook.ErrRunNotFound) && o.client != nil {
		mirror := &runbook.ConfigMapMirror{Client: o.client, Namespace: o.StateNS}
		st, err = mirror.Load(ctx, args[0])
	}
	if errors.Is(err, runbook.ErrRunNotFound) {
		return nil, exitcode.UsageError(err)
	}
	return st, err
}

// NewResumeCommand returns `drydock resume [RUN-ID]`.
func NewResumeCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RunOptions{kube: kube, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "resume [RUN-ID]",
		Short: "Continue a paused, interrupted or failed run where it stopped (default: the newest)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := o.openRun(cmd.Context(), args, runbook.RunStatus.Resumable)
			if err != nil {
				return err
			}
			return o.execute(cmd, "resume", func(ctx context.Context) error {
				st, err = o.engine.Resume(ctx, st)
				return err
			}, func() *runbook.RunState { return st })
		},
	}
	o.addRunFlags(cmd)
	return cmd
}

// NewRollbackCommand returns `drydock rollback [RUN-ID] [--to STEP]`.
func NewRollbackCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RunOptions{kube: kube, IOStreams: streams}
	var restoreBackup bool
	cmd := &cobra.Command{
		Use:   "rollback [RUN-ID]",
		Short: "Undo a run's completed steps, newest first (back to and including --to STEP)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := o.openRun(cmd.Context(), args, func(s runbook.RunStatus) bool { return s != runbook.RunRolledBack || restoreBackup })
			if err != nil {
				return err
			}
			point := ""
			for _, s := range st.Steps {
				if strings.HasPrefix(s.RollbackPoint, "velero-backup ") {
					point = strings.TrimPrefix(s.RollbackPoint, "velero-backup ")
				}
			}
			if restoreBackup {
				return o.restoreBackup(cmd.Context(), st, point)
			}
			if point != "" {
				fmt.Fprintf(o.ErrOut, "drydock: run %s has a rollback point, Velero backup %s: `drydock rollback %s --restore-backup` restores it (asks first)\n", st.ID, point, st.ID)
			}
			var undo []string
			seen := o.To == ""
			for _, s := range st.Steps {
				if s.Name == o.To {
					seen = true
				}
				if seen && s.Status != runbook.StatusPending && s.Status != runbook.StatusSkipped && s.Status != runbook.StatusRolledBack {
					undo = append([]string{s.Name}, undo...)
				}
			}
			if err := o.confirm(fmt.Sprintf("rollback run %s would undo %s", st.ID, strings.Join(undo, ", ")),
				fmt.Sprintf("Undo run %s, steps %s (newest first)?", st.ID, strings.Join(undo, ", "))); err != nil {
				return err
			}
			return o.execute(cmd, "rollback", func(ctx context.Context) error {
				st, err = o.engine.Rollback(ctx, st, o.To)
				return err
			}, func() *runbook.RunState { return st })
		},
	}
	o.addRunFlags(cmd)
	cmd.Flags().StringVar(&o.To, "to", "", "undo back to and including this step (default: every step)")
	cmd.Flags().BoolVar(&restoreBackup, "restore-backup", false, "instead of undoing steps, restore the run's Velero backup (its rollback point), after confirmation")
	return cmd
}

// confirm asks question at the terminal unless --yes; without a terminal it refuses with what
// (exit 2), and a "no" aborts (exit 4).
func (o *RunOptions) confirm(what, question string) error {
	if o.Yes {
		return nil
	}
	if !o.interactive {
		return exitcode.UsageError(fmt.Errorf("%s: pass --yes to confirm when nobody can answer", what))
	}
	fmt.Fprintf(o.ErrOut, "%s [y/N] ", question)
	line, _ := bufio.NewReader(o.In).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return exitcode.With(exitcode.Aborted, errors.New("rollback: not confirmed"))
	}
	return nil
}

// restoreBackup restores the run's Velero backup: an explicit, confirmed action, never automatic.
func (o *RunOptions) restoreBackup(ctx context.Context, st *runbook.RunState, point string) error {
	if point == "" {
		return exitcode.UsageError(fmt.Errorf("rollback run %s --restore-backup: the run has no Velero backup (no velero-backup step completed)", st.ID))
	}
	ns, name, _ := strings.Cut(point, "/")
	if err := o.confirm(fmt.Sprintf("rollback run %s would restore Velero backup %s", st.ID, point),
		fmt.Sprintf("Restore Velero backup %s into the cluster? Objects that exist are left as they are.", point)); err != nil {
		return err
	}
	vc, err := velero.New(o.engine.REST, ns)
	if err != nil {
		return err
	}
	restoreName := fmt.Sprintf("%s-rollback-%d", name, time.Now().Unix())
	r, err := vc.CreateRestore(ctx, &velerov1.Restore{ObjectMeta: metav1.ObjectMeta{Name: restoreName, Namespace: ns, Labels: map[string]string{velero.LabelRunID: st.ID}},
		Spec: velerov1.RestoreSpec{BackupName: name}})
	if err != nil {
		return fmt.Errorf("rollback run %s: create restore of %s: %w", st.ID, point, err)
	}
	fmt.Fprintf(o.ErrOut, "drydock: restore %s/%s created from backup %s; waiting for it\n", ns, r.Name, name)
	r, err = vc.WaitRestore(ctx, r.Name, func(*velerov1.Restore) {}, velero.RestoreFinished)
	if err != nil {
		return fmt.Errorf("rollback run %s: restore %s/%s: %w", st.ID, ns, restoreName, err)
	}
	items := 0
	if r.Status.Progress != nil {
		items = r.Status.Progress.ItemsRestored
	}
	fmt.Fprintf(o.Out, "restore %s/%s: %s, %d items, %d warnings, %d errors\n", ns, r.Name, r.Status.Phase, items, r.Status.Warnings, r.Status.Errors)
	if r.Status.Phase != velerov1.RestorePhaseCompleted {
		return fmt.Errorf("rollback run %s: restore %s/%s ended %s: velero restore describe %s --details", st.ID, ns, r.Name, r.Status.Phase, r.Name)
	}
	return nil
}

// NewRunsCommand returns `drydock runs`.
func NewRunsCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RunOptions{kube: kube, IOStreams: streams}
	var cluster, prune bool
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs and their status (this machine's; --cluster adds those mirrored in the cluster)",
		Example: `  drydock runs
  drydock runs --cluster -o json
  drydock runs --prune --keep-runs 5     # delete the cluster copies of finished runs but the newest 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Output != "text" && o.Output != "json" {
				return exitcode.UsageError(fmt.Errorf("runs: unknown output %q: use -o text or -o json", o.Output))
			}
			if o.KeepRuns < 0 {
				return exitcode.UsageError(fmt.Errorf("runs: --keep-runs must be 0 or more"))
			}
			if err := o.Complete(cluster || prune); err != nil {
				return err
			}
			if prune {
				mirror := &runbook.ConfigMapMirror{Client: o.client, Namespace: o.StateNS}
				pruned, err := mirror.Prune(cmd.Context(), o.KeepRuns)
				for _, id := range pruned {
					fmt.Fprintf(o.Out, "pruned run %s (ConfigMap %s/%s)\n", id, o.StateNS, runbook.ConfigMapName(id))
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(o.Out, "%d run(s) pruned; the newest %d finished runs and every unfinished one are kept\n", len(pruned), o.KeepRuns)
				return nil
			}
			runs, err := runbook.ListRuns(o.StateDir)
			if err != nil {
				return err
			}
			if cluster {
				mirror := &runbook.ConfigMapMirror{Client: o.client, Namespace: o.StateNS}
				remote, err := mirror.List(cmd.Context())
				if err != nil {
					return fmt.Errorf("runs: list ConfigMaps in %s: %w", o.StateNS, err)
				}
				local := map[string]bool{}
				for _, r := range runs {
					local[r.ID] = true
				}
				for _, r := range remote {
					if !local[r.ID] {
						runs = append(runs, r)
					}
				}
			}
			if o.Output == "json" {
				b, _ := json.MarshalIndent(runs, "", "  ")
				fmt.Fprintln(o.Out, string(b))
				return nil
			}
			w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "RUN\tRUNBOOK\tSTATUS\tAT STEP\tUPDATED\tOPERATOR")
			for _, r := range runs {
				at := "-"
				for _, s := range r.Steps {
					if s.Status != runbook.StatusDone && s.Status != runbook.StatusSkipped {
						at = s.Name + " (" + string(s.Status) + ")"
						break
					}
				}
				if r.Pause != nil {
					at = fmt.Sprintf("%s (paused %s)", r.Pause.Step, r.Pause.When)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Runbook, r.Status, at, r.Updated.Local().Format(time.DateTime), r.Operator)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVar(&cluster, "cluster", false, "also list the runs mirrored in the cluster")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete the journal ConfigMaps of finished runs (succeeded, rolled back) but the newest --keep-runs")
	cmd.Flags().IntVar(&o.KeepRuns, "keep-runs", runbook.DefaultKeepRuns, "with --prune: how many finished runs keep their ConfigMap")
	o.addStateFlags(cmd)
	return cmd
}
