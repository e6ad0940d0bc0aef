// Package exec is the `exec` step: run a command once, or once per node, with Go-template arguments.
//
//   - name: upgrade-kubelet
//     type: exec
//     with:
//     nodes: {selector: "drydock.dev/group=general"}
//     command: [ssh, "{{.Node.Name}}", sudo, kubeadm, upgrade, node]
//     rollback: [ssh, "{{.Node.Name}}", sudo, systemctl, restart, kubelet]
//
// Each command's output goes out as log events; a non-zero exit fails the step. Commands are
// journaled one by one: a re-entered step (after a crash) skips the nodes already done and runs the
// interrupted one again, so commands must be safe to repeat.
package exec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drydock-dev/drydock/runbook"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "exec",
	Description: "run a command once, or once per node, with Go-template arguments ({{.Node.Name}}, {{.TargetVersion}})",
	Phase:       runbook.PhaseAny,
	New:         func() runbook.Step { return &Step{} },
}

// Step is the exec step's settings.
type Step struct {
	// Command and its arguments; each is a Go template.
	Command []string `json:"command" jsonschema:"minItems=1"`
	// Nodes, when set, runs the command once per matching node, in name order.
	Nodes *Nodes `json:"nodes,omitempty"`
	// Env adds environment variables (values are templates).
	Env map[string]string `json:"env,omitempty"`
	// Dir is the working directory.
	Dir string `json:"dir,omitempty"`
	// Rollback is the command that undoes Command, run per node done, newest first.
	Undo []string `json:"rollback,omitempty"`
}

// Nodes selects nodes.
type Nodes struct {
	// Selector is a label selector, as in kubectl -l.
	Selector string `json:"selector"`
}

// Data is what the templates see.
type Data struct {
	Node *corev1.Node // nil when the step does not run per node
	// Member is the control-plane member being upgraded (the controlplane step).
	Member        string
	TargetVersion string
	RunID         string
	Step          string
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// ValidateSettings parses the templates and the selector.
func (s *Step) ValidateSettings() []runbook.FieldError {
	var errs []runbook.FieldError
	check := func(field string, args []string) {
		for i, a := range args {
			if _, err := parse(a); err != nil {
				errs = append(errs, runbook.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Message: "bad template: " + err.Error(),
					Hint: "templates see .Node (with .Node.Name, .Node.Labels), .Member (controlplane), .TargetVersion, .RunID and .Step"})
			}
		}
	}
	if len(s.Command) > 0 && strings.TrimSpace(s.Command[0]) == "" {
		errs = append(errs, runbook.FieldError{Field: "command[0]", Message: "the program name is empty"})
	}
	check("command", s.Command)
	check("rollback", s.Undo)
	for k, v := range s.Env {
		if _, err := parse(v); err != nil {
			errs = append(errs, runbook.FieldError{Field: "env." + k, Message: "bad template: " + err.Error()})
		}
	}
	if s.Nodes != nil {
		if _, err := labels.Parse(s.Nodes.Selector); err != nil {
			errs = append(errs, runbook.FieldError{Field: "nodes.selector", Message: err.Error(), Hint: "a label selector as in kubectl -l, e.g. drydock.dev/group=general"})
		}
	}
	return errs
}

func parse(text string) (*template.Template, error) {
	return template.New("arg").Option("missingkey=error").Parse(text)
}

// target is one run of the command: once, or for one node.
type target struct {
	key  string
	node *corev1.Node
}

func (s *Step) targets(ctx context.Context, env *runbook.Env) ([]target, error) {
	if s.Nodes == nil {
		return []target{{key: "once"}}, nil
	}
	if env.Kube == nil {
		return nil, errors.New("this step runs per node and needs a cluster")
	}
	list, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: s.Nodes.Selector})
	if err != nil {
		return nil, fmt.Errorf("list nodes %q: %w", s.Nodes.Selector, err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no node matches %q: check nodes.selector (kubectl get nodes -l '%s')", s.Nodes.Selector, s.Nodes.Selector)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var ts []target
	for i := range list.Items {
		ts = append(ts, target{key: "node/" + list.Items[i].Name, node: &list.Items[i]})
	}
	return ts, nil
}

func render(args []string, d Data) ([]string, error) {
	var out []string
	for _, a := range args {
		t, err := parse(a)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return nil, err
		}
		out = append(out, b.String())
	}
	return out, nil
}

func (s *Step) data(env *runbook.Env, node *corev1.Node) Data {
	return Data{Node: node, TargetVersion: env.Target, RunID: env.RunID, Step: env.Spec.Name}
}

// Plan lists the commands the step will run.
func (s *Step) Plan(ctx context.Context, env *runbook.Env) ([]string, error) {
	ts, err := s.targets(ctx, env)
	if err != nil {
		return nil, err
	}
	var actions []string
	for _, t := range ts {
		argv, err := render(s.Command, s.data(env, t.node))
		if err != nil {
			return nil, err
		}
		actions = append(actions, "run: "+shellQuote(argv))
	}
	return actions, nil
}

// Run runs the command for every target not yet done.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	ts, err := s.targets(ctx, env)
	if err != nil {
		return err
	}
	for i, t := range ts {
		if env.Done(t.key) {
			env.Progress("already done: "+t.key, i+1, len(ts))
			continue
		}
		argv, err := render(s.Command, s.data(env, t.node))
		if err != nil {
			return fmt.Errorf("%s: %w", t.key, err)
		}
		if err := env.Record(ctx, runbook.Change{Kind: "exec", Object: t.key}); err != nil {
			return err
		}
		env.Progress(fmt.Sprintf("%s: %s", t.key, shellQuote(argv)), i, len(ts))
		if err := s.run(ctx, env, argv, t.node); err != nil {
			if t.node != nil {
				return fmt.Errorf("node %q: %w", t.node.Name, err)
			}
			return err
		}
		if err := env.MarkDone(ctx, t.key); err != nil {
			return err
		}
		env.Progress(t.key+": done", i+1, len(ts))
	}
	return nil
}

// WontUndo says that without a rollback command the command's effect stays.
func (s *Step) WontUndo() string {
	if len(s.Undo) == 0 {
		return shellQuote(s.Command) + " ran and the step has no rollback command: its effect stays"
	}
	return ""
}

// Rollback runs the rollback command for every target the step ran on, newest first.
func (s *Step) Rollback(ctx context.Context, env *runbook.Env) error {
	changes := env.Changes()
	if len(changes) == 0 {
		return runbook.ErrNothingToUndo
	}
	if len(s.Undo) == 0 {
		// The command ran and changed what it changed; without a rollback command that stays.
		for _, c := range changes {
			if c.Kind == "exec" {
				obj := c.Object
				if obj == "once" {
					obj = "step " + env.Spec.Name
				}
				if err := env.Keep(ctx, runbook.Kept{Object: obj, Reason: shellQuote(s.Command) + " ran and the step has no rollback command: its effect stays"}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var nodes map[string]*corev1.Node
	if s.Nodes != nil {
		nodes = map[string]*corev1.Node{}
		list, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		for i := range list.Items {
			nodes["node/"+list.Items[i].Name] = &list.Items[i]
		}
	}
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.Kind != "exec" {
			continue
		}
		undoKey := "rollback/" + c.Object
		if env.Done(undoKey) {
			continue
		}
		node := nodes[c.Object]
		if s.Nodes != nil && node == nil {
			return fmt.Errorf("%s no longer exists: cannot run the rollback command on it", c.Object)
		}
		argv, err := render(s.Undo, s.data(env, node))
		if err != nil {
			return err
		}
		env.Progress(fmt.Sprintf("undo %s: %s", c.Object, shellQuote(argv)), len(changes)-1-i, len(changes))
		if err := s.run(ctx, env, argv, node); err != nil {
			return fmt.Errorf("undo %s: %w", c.Object, err)
		}
		if err := env.MarkDone(ctx, undoKey); err != nil {
			return err
		}
	}
	return nil
}

func (s *Step) run(ctx context.Context, env *runbook.Env, argv []string, node *corev1.Node) error {
	return RunCommand(ctx, env, argv, node, s.Dir, s.Env)
}

// Render fills in the templates of args for node (nil: not per node).
func Render(env *runbook.Env, args []string, node *corev1.Node) ([]string, error) {
	return render(args, Data{Node: node, TargetVersion: env.Target, RunID: env.RunID, Step: env.Spec.Name})
}

// RenderPreview fills in the templates of args for a node as a preview before the run shows them.
func RenderPreview(args []string, node *corev1.Node, target, runID, step string) ([]string, error) {
	return render(args, Data{Node: node, TargetVersion: target, RunID: runID, Step: step})
}

// RenderMember fills in the templates of args for a control-plane member (.Member).
func RenderMember(env *runbook.Env, args []string, member string) ([]string, error) {
	return render(args, Data{Member: member, TargetVersion: env.Target, RunID: env.RunID, Step: env.Spec.Name})
}

// CheckTemplates reports template errors in args, for a kind's ValidateSettings.
func CheckTemplates(field string, args []string) []runbook.FieldError {
	var errs []runbook.FieldError
	for i, a := range args {
		if _, err := parse(a); err != nil {
			errs = append(errs, runbook.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Message: "bad template: " + err.Error(),
				Hint: "templates see .Node (with .Node.Name, .Node.Labels), .TargetVersion, .RunID and .Step"})
		}
	}
	return errs
}

// RunCommand runs argv (already rendered) as the exec step does: output as log events, killed with
// its process group on cancel and with drydock if drydock dies, a non-zero exit quoted as an error.
func RunCommand(ctx context.Context, env *runbook.Env, argv []string, node *corev1.Node, dir string, vars map[string]string) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	d := Data{Node: node, TargetVersion: env.Target, RunID: env.RunID, Step: env.Spec.Name}
	for k, v := range vars {
		val, err := render([]string{v}, d)
		if err != nil {
			return fmt.Errorf("env %s: %w", k, err)
		}
		cmd.Env = append(cmd.Env, k+"="+val[0])
	}
	cmd.Env = append(cmd.Env, "DRYDOCK_RUN_ID="+env.RunID, "DRYDOCK_STEP="+env.Spec.Name, "DRYDOCK_TARGET_VERSION="+env.Target)
	if node != nil {
		cmd.Env = append(cmd.Env, "DRYDOCK_NODE="+node.Name)
	}
	// Its own process group, killed as a whole on cancel; and (on Linux) killed if drydock itself
	// dies, so that a resumed run never races an orphan of the previous one.
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	var wg sync.WaitGroup
	var lastErr string
	var mu sync.Mutex
	pump := func(r io.Reader, stream string) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			env.Logf(stream, "%s", sc.Text())
			if stream == "stderr" {
				mu.Lock()
				lastErr = sc.Text()
				mu.Unlock()
			}
		}
	}
	wg.Add(2)
	go pump(stdout, "stdout")
	go pump(stderr, "stderr")
	wg.Wait()
	err = cmd.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s stopped: %w", argv[0], context.Cause(ctx))
		}
		var ee *osexec.ExitError
		if errors.As(err, &ee) {
			msg := fmt.Sprintf("%s exited with code %d", shellQuote(argv), ee.ExitCode())
			if lastErr != "" {
				msg += ": " + lastErr
			}
			return errors.New(msg)
		}
		return fmt.Errorf("%s: %w", shellQuote(argv), err)
	}
	return nil
}

func shellQuote(argv []string) string {
	var parts []string
	for _, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$`\\|&;<>()*?[]{}~#") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
