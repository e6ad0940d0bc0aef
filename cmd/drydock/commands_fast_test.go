package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
)

// testFactory is a Factory whose cluster functions fail the test: flags become options without one.
func testFactory(t *testing.T) (*Factory, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := NewFactory(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, genericclioptions.NewConfigFlags(true))
	f.RESTConfig = func() (*rest.Config, error) {
		t.Error("RESTConfig called: Complete and Validate must not load the kubeconfig")
		return nil, errors.New("no")
	}
	f.KubeClient = func() (kubernetes.Interface, error) { t.Error("KubeClient called"); return nil, errors.New("no") }
	return f, &out, &errOut
}

// execCmd runs one command with args, its runF in place of Run.
func execCmd(t *testing.T, cmd *cobra.Command, args ...string) error {
	t.Helper()
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	return cmd.ExecuteContext(context.Background())
}

// TestCommandFlagsToOptions: each command's flags and arguments become its options, Complete then
// Validate, with no cluster and no kubeconfig (the runF seam); a bad flag is a usage error (exit 2)
// before anything runs.
func TestCommandFlagsToOptions(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, got any)
	for _, tc := range []struct {
		name string
		make func(f *Factory, ran *any) *cobra.Command
		args []string
		want check
		code exitcode.Code // when the command line is refused
	}{
		{
			name: "run", args: []string{"up.yaml", "--yes", "--no-mirror", "--state-dir", "/s", "--keep-runs", "3", "-o", "json", "--dry-run"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRunCommand(f, func(o *RunOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				o := got.(*RunOptions)
				if o.Path != "up.yaml" || !o.Yes || !o.NoMirror || o.StateDir != "/s" || o.KeepRuns != 3 || o.Output != "json" || !o.DryRun || !o.outputSet {
					t.Errorf("%+v", o)
				}
				if o.LockDuration != runbook.DefaultLockDuration || o.StateNamespace != runbook.DefaultStateNamespace {
					t.Errorf("defaults: %v %q", o.LockDuration, o.StateNamespace)
				}
			},
		},
		{name: "run bad output", args: []string{"up.yaml", "-o", "xml"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRunCommand(f, func(o *RunOptions) error { *ran = o; return nil })
			}},
		{name: "run keep-runs 0", args: []string{"up.yaml", "--keep-runs", "0"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRunCommand(f, func(o *RunOptions) error { *ran = o; return nil })
			}},
		{
			name: "resume newest", args: nil,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewResumeCommand(f, func(o *ResumeOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*ResumeOptions); o.RunID != "" || o.Output != "text" || o.outputSet {
					t.Errorf("%+v", o)
				}
			},
		},
		{
			name: "rollback", args: []string{"r-1", "--to", "canary", "--yes"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRollbackCommand(f, func(o *RollbackOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*RollbackOptions); o.RunID != "r-1" || o.To != "canary" || !o.Yes || o.RestoreBackup {
					t.Errorf("%+v", o)
				}
			},
		},
		{name: "rollback restore with --to", args: []string{"r-1", "--restore-backup", "--to", "x"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRollbackCommand(f, func(o *RollbackOptions) error { *ran = o; return nil })
			}},
		{
			name: "plan jsonpath", args: []string{"up.yaml", "-o", "jsonpath={.steps[*].name}", "--state-dir", "/s"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewPlanCommand(f, func(o *PlanOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*PlanOptions); o.Path != "up.yaml" || o.Print.Text() || o.StateDir != "/s" {
					t.Errorf("%+v", o)
				}
			},
		},
		{name: "plan bad output", args: []string{"up.yaml", "-o", "wide"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewPlanCommand(f, func(o *PlanOptions) error { *ran = o; return nil })
			}},
		{
			name: "rehearse", args: []string{"up.yaml", "--sim-bin", "/opt/kwok", "-o", "json", "--state-dir", "/s", "--no-tui"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRehearseCommand(f, func(o *RehearseOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*RehearseOptions); o.Path != "up.yaml" || o.SimBin != "/opt/kwok" || o.Output != "json" || o.StateDir != "/s" || !o.NoTUI || !o.outputSet {
					t.Errorf("%+v", o)
				}
			},
		},
		{name: "rehearse bad output", args: []string{"up.yaml", "-o", "yaml"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRehearseCommand(f, func(o *RehearseOptions) error { *ran = o; return nil })
			}},
		{
			name: "runs", args: []string{"--from-cluster", "--prune", "--keep-runs", "0", "-o", "yaml", "--state-namespace", "ops"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRunsCommand(f, func(o *RunsOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*RunsOptions); !o.FromCluster || !o.Prune || o.KeepRuns != 0 || o.Print.Text() || o.StateNamespace != "ops" {
					t.Errorf("%+v", o)
				}
			},
		},
		{name: "runs keep-runs negative", args: []string{"--keep-runs", "-1"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewRunsCommand(f, func(o *RunsOptions) error { *ran = o; return nil })
			}},
		{
			name: "drain", args: []string{"n1", "n2", "--timeout", "2m", "--force", "--delete-emptydir-data", "--concurrency", "3", "--node-timeout", "1m", "--keep-cordoned"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				o := got.(*DrainOptions)
				s := o.Settings
				if !reflect.DeepEqual(s.Nodes, []string{"n1", "n2"}) || o.Timeout != 2*time.Minute || !s.Force || !s.DeleteEmptyDirData || s.Concurrency != 3 ||
					s.NodeTimeout.Duration != time.Minute || !s.KeepCordoned || s.DisableEviction {
					t.Errorf("%+v", o)
				}
			},
		},
		{
			name: "drain dry-run yaml", args: []string{"-l", "pool=a", "--dry-run", "-o", "yaml"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*DrainOptions); o.Settings.Selector != "pool=a" || !o.DryRun || o.planPrint().Text() {
					t.Errorf("%+v", o)
				}
			},
		},
		{name: "drain yaml without dry-run", args: []string{"n1", "-o", "yaml"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			}},
		{name: "drain nothing named", args: nil, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			}},
		{name: "drain names and selector", args: []string{"n1", "-l", "a=b"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			}},
		{name: "drain concurrency 0", args: []string{"n1", "--concurrency", "0"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			}},
		{
			name: "drain max-node-drain-time", args: []string{"n1", "--max-node-drain-time", "eks"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*DrainOptions); o.Settings.MaxNodeDrainTime != "eks" {
					t.Errorf("%+v", o.Settings)
				}
			},
		},
		{name: "drain max-node-drain-time neither platform nor duration", args: []string{"n1", "--max-node-drain-time", "fargate"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewDrainCommand(f, func(o *DrainOptions) error { *ran = o; return nil })
			}},
		{
			name: "uncordon", args: []string{"a", "b"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewUncordonCommand(f, func(o *UncordonOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*UncordonOptions); !reflect.DeepEqual(o.Nodes, []string{"a", "b"}) {
					t.Errorf("%+v", o)
				}
			},
		},
		{
			name: "validate", args: []string{"a.yaml", "b.yaml", "-o", "json"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewValidateCommand(f, func(o *ValidateOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*ValidateOptions); !reflect.DeepEqual(o.Paths, []string{"a.yaml", "b.yaml"}) || o.Output != "json" {
					t.Errorf("%+v", o)
				}
			},
		},
		{name: "validate bad output", args: []string{"a.yaml", "-o", "yaml"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewValidateCommand(f, func(o *ValidateOptions) error { *ran = o; return nil })
			}},
		{
			name: "version", args: []string{"--client", "-o", "yaml"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewVersionCommand(f, func(o *VersionOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				if o := got.(*VersionOptions); !o.ClientOnly || o.Output != "yaml" {
					t.Errorf("%+v", o)
				}
			},
		},
		{
			name: "preflight", args: []string{"--target", "v1.38", "--files-only", "--manifests", ".", "--checks", "api-scan", "--fail-on", "warning", "-o", "sarif"},
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewPreflightCommand(f, func(o *PreflightOptions) error { *ran = o; return nil })
			},
			want: func(t *testing.T, got any) {
				o := got.(*PreflightOptions)
				if o.Target != "v1.38" || !o.FilesOnly || !reflect.DeepEqual(o.Manifests, []string{"."}) || !reflect.DeepEqual(o.Checks, []string{"api-scan"}) || o.FailOn != "warning" || o.Output != "sarif" {
					t.Errorf("%+v", o)
				}
			},
		},
		{name: "preflight old --cluster=false", args: []string{"--cluster=false", "--manifests", "."}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				cmd := NewPreflightCommand(f, func(o *PreflightOptions) error { *ran = o; return nil })
				f.KubeFlags.AddFlags(cmd.Flags())
				return cmd
			}},
		{name: "runs old --cluster=true", args: []string{"--cluster=true"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				cmd := NewRunsCommand(f, func(o *RunsOptions) error { *ran = o; return nil })
				f.KubeFlags.AddFlags(cmd.Flags())
				return cmd
			}},
		{name: "preflight unknown check", args: []string{"--checks", "nope"}, code: exitcode.Usage,
			make: func(f *Factory, ran *any) *cobra.Command {
				return NewPreflightCommand(f, func(o *PreflightOptions) error { *ran = o; return nil })
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, _, _ := testFactory(t)
			var ran any
			err := execCmd(t, tc.make(f, &ran), tc.args...)
			if tc.code != 0 {
				if got := exitcode.For(err); got != tc.code || ran != nil {
					t.Fatalf("exit %d (%v), ran %v; want exit %d before Run", got, err, ran != nil, tc.code)
				}
				return
			}
			if err != nil || ran == nil {
				t.Fatalf("err %v, ran %v", err, ran != nil)
			}
			tc.want(t, ran)
		})
	}
}

// TestNoKubeconfigIsAUsageError: with no kubeconfig at all, a command that needs the cluster says
// so (exit 2) instead of trying localhost:8080.
func TestNoKubeconfigIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", dir+"/none")
	t.Setenv("HOME", dir)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, args := range [][]string{
		{"drydock", "drain", "n1", "--state-dir", dir},
		{"drydock", "uncordon", "n1"},
		{"drydock", "runs", "--from-cluster", "--state-dir", dir},
		{"drydock", "version"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		if code != exitcode.Usage || !strings.Contains(errOut.String(), "no kubeconfig: pass --kubeconfig") || strings.Contains(errOut.String(), "localhost:8080 ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and the fix", args[1:], code, errOut.String())
		}
	}
}

// TestLinePromptAsksAgainBeforeDestructiveAnswers: at a pause point without the terminal UI, r and
// s are asked again (default no); c continues at once.
func TestLinePromptAsksAgainBeforeDestructiveAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		input string
		want  runbook.Decision
	}{
		{"c\n", runbook.Continue},
		{"r\n\nc\n", runbook.Continue}, // r, then enter: no
		{"r\nn\ns\nno\nc\n", runbook.Continue},
		{"r\ny\n", runbook.RollBack},
		{"s\nyes\n", runbook.Stop},
		{"", runbook.Stop}, // end of input: nobody can answer
	} {
		var errOut bytes.Buffer
		p := newTerminalPrompter(genericiooptions.IOStreams{In: strings.NewReader(tc.input), Out: &bytes.Buffer{}, ErrOut: &errOut}, func(string) string { return "" })
		got, err := p.Decider().Decide(context.Background(), runbook.PauseRequest{RunID: "r1", Step: "canary", When: "after"})
		if err != nil || got != tc.want {
			t.Errorf("%q: %v (%v), want %v\n%s", tc.input, got, err, tc.want, errOut.String())
		}
	}
}

// writeJournal puts a run's journal where drydock keeps it (no cluster needed to read it back).
func writeJournal(t *testing.T, stateDir string, st *runbook.RunState) {
	t.Helper()
	dir := filepath.Join(stateDir, "runs", st.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "journal.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunsAndStatusFromJournals: `drydock runs` shows kind, cluster, status, start and duration and
// filters by status and kind; `drydock status` summarises one run with what to do next. Both read
// the local journals only: no kubeconfig is needed.
func TestRunsAndStatusFromJournals(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	started, finished := t0.Add(time.Minute), t0.Add(3*time.Minute)
	writeJournal(t, state, &runbook.RunState{ID: "20261201-0300-aaaa", Kind: "drain", Runbook: "drain", Context: "prod", Status: runbook.RunSucceeded,
		Created: t0, Updated: t0.Add(90 * time.Second), Operator: "ann@h", Steps: []runbook.StepState{{Name: "drain", Kind: "drain", Status: runbook.StatusDone}}})
	writeJournal(t, state, &runbook.RunState{ID: "20261201-0400-bbbb", Runbook: "upgrade", Cluster: "https://10.0.0.1:6443", Status: runbook.RunPaused,
		Pause: &runbook.PausePoint{Step: "canary", When: "after"}, Created: t0.Add(time.Hour), Updated: t0.Add(time.Hour + 5*time.Minute), Operator: "bob@h",
		Steps: []runbook.StepState{
			{Name: "backup", Kind: "velero-backup", Status: runbook.StatusDone, Started: &started, Finished: &finished,
				RollbackPoint: &runbook.RollbackPoint{Kind: runbook.RollbackPointVeleroBackup, Namespace: "velero", Name: "b1"}},
			{Name: "canary", Kind: "canary", Status: runbook.StatusDone, Attempts: 2},
			{Name: "fleet", Kind: "nodegroups", Status: runbook.StatusPending},
		}})
	do := func(args ...string) (string, exitcode.Code) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"drydock"}, append(args, "--state-dir", state)...),
			genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		return out.String() + errOut.String(), code
	}
	out, code := do("runs")
	if code != 0 || !strings.Contains(out, "KIND") || !regexp.MustCompile(`20261201-0300-aaaa\s+drain\s+drain\s+prod\s+succeeded`).MatchString(out) ||
		!regexp.MustCompile(`20261201-0400-bbbb\s+run\s+upgrade\s+https://10.0.0.1:6443\s+paused\s+canary \(paused after\)`).MatchString(out) || !strings.Contains(out, "1m30s") {
		t.Errorf("runs: exit %d\n%s", code, out)
	}
	out, _ = do("runs", "--status", "paused,failed")
	if strings.Contains(out, "aaaa") || !strings.Contains(out, "bbbb") {
		t.Errorf("runs --status paused,failed:\n%s", out)
	}
	out, _ = do("runs", "--kind", "drain", "-o", "jsonpath={.items[*].id}")
	if strings.TrimSpace(out) != "20261201-0300-aaaa" {
		t.Errorf("runs --kind drain -o jsonpath: %q", out)
	}
	if _, code := do("runs", "--status", "bogus"); code != exitcode.Usage {
		t.Errorf("runs --status bogus: exit %d", code)
	}
	out, code = do("status", "20261201-0400-bbbb")
	for _, want := range []string{"Run:", "20261201-0400-bbbb (run of \"upgrade\", target", "Status:", "paused", "backup", "2m0s", "rollback point: velero-backup velero/b1",
		"canary", "2 attempts; paused after", "fleet", "drydock resume 20261201-0400-bbbb"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, no %q in\n%s", code, want, out)
			break
		}
	}
	out, code = do("status")
	if code != 0 || !strings.Contains(out, "20261201-0400-bbbb") {
		t.Errorf("status (the newest): exit %d\n%s", code, out)
	}
	out, code = do("status", "20261201-0300-aaaa", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "kind: Run\n") || !strings.Contains(out, "kind: drain") {
		t.Errorf("status -o yaml: exit %d\n%s", code, out)
	}
	if _, code := do("status", "20200101-0000-none"); code != exitcode.Usage {
		t.Errorf("status of an unknown run: exit %d", code)
	}
}

// TestEveryCommandHasExamples: each command's help shows how it is used.
func TestEveryCommandHasExamples(t *testing.T) {
	t.Parallel()
	f, _, _ := testFactory(t)
	for _, c := range NewRootCommandWith(f, "drydock").Commands() {
		if !c.Hidden && c.Name() != "help" && c.Name() != "completion" && strings.TrimSpace(c.Example) == "" {
			t.Errorf("drydock %s has no examples", c.Name())
		}
	}
}

// TestCompletions: run ids and step names from the journals, check names, output formats and
// filters, each with what it is (no cluster needed for these).
func TestCompletions(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	writeJournal(t, state, &runbook.RunState{ID: "20261201-0300-aaaa", Runbook: "up", Status: runbook.RunSucceeded, Created: t0, Updated: t0,
		Steps: []runbook.StepState{{Name: "backup", Kind: "velero-backup", Status: runbook.StatusDone}, {Name: "canary", Kind: "canary", Status: runbook.StatusDone}}})
	writeJournal(t, state, &runbook.RunState{ID: "20261201-0400-bbbb", Runbook: "up", Status: runbook.RunPaused, Created: t0, Updated: t0})
	complete := func(args ...string) string {
		var out bytes.Buffer
		run(context.Background(), append([]string{"drydock", "__complete"}, args...), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &bytes.Buffer{}})
		return out.String()
	}
	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"resume", "--state-dir", state, ""}, []string{"20261201-0400-bbbb\tpaused"}, []string{"aaaa"}},
		{[]string{"rollback", "--state-dir", state, ""}, []string{"20261201-0300-aaaa\tsucceeded", "20261201-0400-bbbb"}, nil},
		{[]string{"rollback", "20261201-0300-aaaa", "--state-dir", state, "--to", ""}, []string{"backup\tvelero-backup, done", "canary"}, nil},
		{[]string{"status", "--state-dir", state, "2026"}, []string{"20261201-0300-aaaa", "20261201-0400-bbbb"}, nil},
		{[]string{"preflight", "--checks", "api-scan,pdb"}, []string{"api-scan,pdb-check"}, []string{"health-check"}},
		{[]string{"preflight", "-o", ""}, []string{"sarif", "junit"}, nil},
		{[]string{"runs", "--status", "pa"}, []string{"paused"}, []string{"failed"}},
		{[]string{"plan", "x.yaml", "-o", "j"}, []string{"json", "jsonpath="}, []string{"yaml"}},
	} {
		out := complete(tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("complete %v: no %q in\n%s", tc.args, w, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("complete %v: %q should not be offered:\n%s", tc.args, n, out)
			}
		}
	}
}
