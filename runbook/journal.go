package runbook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// RunStatus is where a run stands.
type RunStatus string

const (
	RunRunning        RunStatus = "running"
	RunPaused         RunStatus = "paused"      // stopped at a pause point; resume continues
	RunInterrupted    RunStatus = "interrupted" // Ctrl-C / SIGTERM / lost lock; resume re-enters the step
	RunFailed         RunStatus = "failed"      // a step failed; resume retries it, rollback undoes
	RunSucceeded      RunStatus = "succeeded"
	RunRolledBack     RunStatus = "rolled-back"
	RunRollbackFailed RunStatus = "rollback-failed" // undoing a step failed; rollback again continues
)

// Resumable says whether `drydock resume` can continue a run in this status.
func (s RunStatus) Resumable() bool {
	return s == RunPaused || s == RunInterrupted || s == RunFailed || s == RunRunning
}

// StepStatus is where a step stands.
type StepStatus string

const (
	StatusPending        StepStatus = "pending"
	StatusRunning        StepStatus = "running" // in flight, or in flight when the process died
	StatusDone           StepStatus = "done"
	StatusSkipped        StepStatus = "skipped"
	StatusFailed         StepStatus = "failed"
	StatusInterrupted    StepStatus = "interrupted"
	StatusPaused         StepStatus = "paused" // stopped at a pause point inside the step
	StatusRolledBack     StepStatus = "rolled-back"
	StatusRollbackFailed StepStatus = "rollback-failed"
)

// Change is something a step changed in the cluster, recorded before or as it is made, so that the
// step's Rollback can undo exactly that (and never, say, an admin's earlier cordon).
type Change struct {
	Kind   string            `json:"kind"`   // e.g. "cordon", "exec"
	Object string            `json:"object"` // e.g. "node/n1"
	Data   map[string]string `json:"data,omitempty"`
	At     time.Time         `json:"at"`
}

// StepState is a step's record in the journal.
type StepState struct {
	Name           string     `json:"name"`
	Kind           string     `json:"kind"`
	Status         StepStatus `json:"status"`
	Attempts       int        `json:"attempts,omitempty"`
	Started        *time.Time `json:"started,omitempty"`
	Finished       *time.Time `json:"finished,omitempty"`
	Error          string     `json:"error,omitempty"`
	BeforeAnswered bool       `json:"beforeAnswered,omitempty"` // the pause point before it was passed
	AfterAnswered  bool       `json:"afterAnswered,omitempty"`  // the pause point after it was passed
	Changes        []Change   `json:"changes,omitempty"`
	Checkpoints    []string   `json:"checkpoints,omitempty"` // items done, for idempotent re-entry
	// RollbackPoint names something a person can roll back to, e.g. a Velero backup.
	RollbackPoint string `json:"rollbackPoint,omitempty"`
}

// PausePoint says where a paused run waits.
type PausePoint struct {
	Step string `json:"step"`
	When string `json:"when"`
}

// RunState is the journal of one run: enough to show it, resume it on another machine, or roll it back.
type RunState struct {
	ID            string      `json:"id"`
	Runbook       string      `json:"runbook"`
	RunbookPath   string      `json:"runbookPath"`
	RunbookText   string      `json:"runbookText"` // the runbook as it was when the run started
	Target        string      `json:"target"`
	Cluster       string      `json:"cluster,omitempty"` // the API server URL
	Context       string      `json:"context,omitempty"`
	StateNS       string      `json:"stateNamespace"`
	Status        RunStatus   `json:"status"`
	Message       string      `json:"message,omitempty"`
	Pause         *PausePoint `json:"pause,omitempty"`
	DryRun        bool        `json:"dryRun,omitempty"`
	Created       time.Time   `json:"created"`
	Updated       time.Time   `json:"updated"`
	Operator      string      `json:"operator"` // user@host
	Steps         []StepState `json:"steps"`
	RollbackSteps []string    `json:"rollbackSteps,omitempty"` // the steps a rollback in progress will undo
}

// Step returns the state of the named step.
func (r *RunState) Step(name string) *StepState {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// NewRunID returns a sortable, short, unique run id: 20261122-0750-ab12.
func NewRunID(now time.Time) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102-1504") + "-" + hex.EncodeToString(b)
}

// Journal persists a RunState durably on every change: to a local directory (write a temporary
// file, fsync, rename, fsync the directory) and then to a ConfigMap in the cluster, so that another
// operator on another machine sees the run and can resume it.
type Journal struct {
	mu     sync.Mutex
	dir    string // the run's directory
	mirror *ConfigMapMirror
	warn   func(error)
	state  *RunState
}

// OpenJournal prepares the journal of state in stateDir/runs/ID.
func OpenJournal(stateDir string, state *RunState, mirror *ConfigMapMirror, warn func(error)) (*Journal, error) {
	dir := filepath.Join(stateDir, "runs", state.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if warn == nil {
		warn = func(error) {}
	}
	return &Journal{dir: dir, mirror: mirror, warn: warn, state: state}, nil
}

// State is the journal's run state. Change it only inside Update.
func (j *Journal) State() *RunState { return j.state }

// Read reads the state under the journal's lock (steps may work on several nodes at once).
func (j *Journal) Read(f func(*RunState)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(j.state)
}

// Update changes the state under the journal's lock and saves it before returning.
func (j *Journal) Update(ctx context.Context, change func(*RunState)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	change(j.state)
	j.state.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(j.state, "", "  ")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(j.dir, "journal.json"), data); err != nil {
		return fmt.Errorf("journal: write %s: %w", j.dir, err)
	}
	if j.mirror != nil {
		// The local journal is the one that counts; a failed mirror is a warning, not a stop.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := j.mirror.Save(mctx, j.state, data); err != nil {
			j.warn(fmt.Errorf("mirror the journal to ConfigMap %s/%s: %w", j.state.StateNS, ConfigMapName(j.state.ID), err))
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".journal-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrRunNotFound: no journal of that run here or in the cluster.
var ErrRunNotFound = errors.New("run not found")

// ReadRun loads the journal of run id from stateDir.
func ReadRun(stateDir, id string) (*RunState, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, "runs", id, "journal.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("run %q: %w in %s", id, ErrRunNotFound, filepath.Join(stateDir, "runs"))
	}
	if err != nil {
		return nil, err
	}
	var st RunState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("run %q: journal is damaged: %w", id, err)
	}
	return &st, nil
}

// ListRuns returns the runs journaled in stateDir, newest first.
func ListRuns(stateDir string) ([]*RunState, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var runs []*RunState
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		st, err := ReadRun(stateDir, e.Name())
		if err != nil {
			continue
		}
		runs = append(runs, st)
	}
	sort.Slice(runs, func(i, k int) bool { return runs[i].Created.After(runs[k].Created) })
	return runs, nil
}

// ConfigMapMirror keeps a copy of each run's journal in a ConfigMap, drydock-run-<ID>.
type ConfigMapMirror struct {
	Client    kubernetes.Interface
	Namespace string
}

// Labels on journal ConfigMaps.
const (
	LabelRunID  = "drydock.dev/run-id"
	LabelPartOf = "app.kubernetes.io/part-of"
)

// ConfigMapName is the name of run id's journal ConfigMap.
func ConfigMapName(id string) string { return "drydock-run-" + id }

// Save writes the journal.
func (m *ConfigMapMirror) Save(ctx context.Context, st *RunState, data []byte) error {
	cms := m.Client.CoreV1().ConfigMaps(m.Namespace)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ConfigMapName(st.ID),
			Namespace: m.Namespace,
			Labels:    map[string]string{LabelRunID: st.ID, LabelPartOf: "drydock", "drydock.dev/status": string(st.Status)},
		},
		Data: map[string]string{"journal.json": string(data)},
	}
	_, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	}
	return err
}

// Load reads run id's journal from the cluster.
func (m *ConfigMapMirror) Load(ctx context.Context, id string) (*RunState, error) {
	cm, err := m.Client.CoreV1().ConfigMaps(m.Namespace).Get(ctx, ConfigMapName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("run %q: %w (no ConfigMap %s/%s)", id, ErrRunNotFound, m.Namespace, ConfigMapName(id))
	}
	if err != nil {
		return nil, err
	}
	var st RunState
	if err := json.Unmarshal([]byte(cm.Data["journal.json"]), &st); err != nil {
		return nil, fmt.Errorf("run %q: the journal in ConfigMap %s/%s is damaged: %w", id, m.Namespace, cm.Name, err)
	}
	return &st, nil
}

// List returns the runs mirrored in the cluster, newest first.
func (m *ConfigMapMirror) List(ctx context.Context) ([]*RunState, error) {
	list, err := m.Client.CoreV1().ConfigMaps(m.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelPartOf + "=drydock," + LabelRunID})
	if err != nil {
		return nil, err
	}
	var runs []*RunState
	for _, cm := range list.Items {
		var st RunState
		if json.Unmarshal([]byte(cm.Data["journal.json"]), &st) == nil {
			runs = append(runs, &st)
		}
	}
	sort.Slice(runs, func(i, k int) bool { return runs[i].Created.After(runs[k].Created) })
	return runs, nil
}

// DefaultStateDir is $XDG_STATE_HOME/drydock, or ~/.local/state/drydock.
func DefaultStateDir() string {
	if d := os.Getenv("DRYDOCK_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "drydock")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "drydock-state")
	}
	return filepath.Join(home, ".local", "state", "drydock")
}

// Operator names who runs drydock: user@host.
func Operator() string {
	host, _ := os.Hostname()
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		} else {
			name = fmt.Sprintf("uid%d", os.Getuid())
		}
	}
	return strings.TrimSpace(name + "@" + host)
}
