package runbook

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"github.com/drydock-dev/drydock/internal/kube"
)

// RunStatus is where a run stands.
type RunStatus string

const (
	RunRunning     RunStatus = "running"
	RunPaused      RunStatus = "paused"      // stopped at a pause point; resume continues
	RunInterrupted RunStatus = "interrupted" // Ctrl-C / SIGTERM / lost lock; resume re-enters the step
	RunFailed      RunStatus = "failed"      // a step failed; resume retries it, rollback undoes
	RunSucceeded   RunStatus = "succeeded"
	RunRolledBack  RunStatus = "rolled-back"
	// RunPartlyRolledBack: the rollback ended, but some of what the run did could not be undone
	// (the steps' Kept say what and why: a node left at the new version by an action without a
	// rollback command).
	RunPartlyRolledBack RunStatus = "partly-rolled-back"
	RunRollbackFailed   RunStatus = "rollback-failed" // undoing a step failed; rollback again continues
	// RunDamaged is never journaled: ListRuns says it of a run whose local journal cannot be read
	// (RunState.Damage says why); its cluster copy, when intact, stands in for it.
	RunDamaged RunStatus = "damaged"
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
	// RollbackPoint is something a person can roll back to from this step, e.g. a Velero backup.
	RollbackPoint *RollbackPoint `json:"rollbackPoint,omitempty"`
	// Kept is what rolling this step back could not undo, and why.
	Kept []Kept `json:"kept,omitempty"`
	// Data is what a step keeps across attempts, by key (e.g. the health baseline it took first).
	Data map[string]json.RawMessage `json:"data,omitempty"`
}

// Kept is something a rollback could not undo.
type Kept struct {
	Object string `json:"object"` // node/general-1, ...
	Reason string `json:"reason"` // left at v1.37.1: the upgrade action has no rollback command
}

// RollbackPoint is something a person can restore the cluster to, made by a step.
type RollbackPoint struct {
	// Kind of the point: RollbackPointVeleroBackup.
	Kind string `json:"kind"`
	// Namespace and Name of the object (the Velero Backup).
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RollbackPointVeleroBackup is a Velero Backup; `drydock rollback --restore-backup` restores it.
const RollbackPointVeleroBackup = "velero-backup"

func (p RollbackPoint) String() string {
	if p.Namespace != "" {
		return p.Kind + " " + p.Namespace + "/" + p.Name
	}
	return p.Kind + " " + p.Name
}

// UnmarshalJSON reads the point, and the text journals before v0.3 kept ("velero-backup ns/name").
func (p *RollbackPoint) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		kind, obj, _ := strings.Cut(s, " ")
		ns, name, found := strings.Cut(obj, "/")
		if !found {
			ns, name = "", obj
		}
		*p = RollbackPoint{Kind: kind, Namespace: ns, Name: name}
		return nil
	}
	type plain RollbackPoint
	return json.Unmarshal(b, (*plain)(p))
}

// RollbackPoint returns the newest rollback point of kind in the run, if any.
func (st *RunState) RollbackPoint(kind string) *RollbackPoint {
	var found *RollbackPoint
	for _, s := range st.Steps {
		if s.RollbackPoint != nil && s.RollbackPoint.Kind == kind {
			found = s.RollbackPoint
		}
	}
	return found
}

// PausePoint says where a paused run waits.
type PausePoint struct {
	Step string `json:"step"`
	When string `json:"when"`
}

// RunState is the journal of one run: enough to show it, resume it on another machine, or roll it back.
type RunState struct {
	ID string `json:"id"`
	// Kind is what started the run: "run" (a runbook) or "drain" (drydock drain); "" in journals
	// written before it was kept means "run".
	Kind          string      `json:"kind,omitempty"`
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
	// Holder is the process of the run's last session: `drydock status` tells from it whether a
	// run journaled as running still has a process.
	Holder *Holder `json:"holder,omitempty"`
	// Damage is why the local journal could not be read (Status RunDamaged); set only by ListRuns,
	// never written.
	Damage string `json:"damage,omitempty"`
}

// Holder is a process that drove a run: its host, PID and boot (machine id and boot id).
type Holder struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	Boot string `json:"boot,omitempty"`
}

// ThisProcess is the Holder of the process that calls it.
func ThisProcess() *Holder {
	host, _ := os.Hostname()
	return &Holder{Host: host, PID: os.Getpid(), Boot: bootIdentity()}
}

// Alive says whether the holder's process still runs, when this machine can tell: known is false
// on another machine or boot (then the cluster's lease tells).
func (h *Holder) Alive() (alive, known bool) {
	if h == nil || h.Boot == "" || h.Boot != bootIdentity() {
		return false, false
	}
	return h.PID == os.Getpid() || processAlive(h.PID), true
}

// KindOf is the run's kind, "run" when the journal does not say.
func (r *RunState) KindOf() string {
	if r.Kind == "" {
		return "run"
	}
	return r.Kind
}

// Duration is how long the run has taken so far: from its start to its last journal write.
func (r *RunState) Duration() time.Duration {
	if r.Updated.Before(r.Created) {
		return 0
	}
	return r.Updated.Sub(r.Created)
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

// Journal persists a RunState durably on every change to a local directory (write a temporary
// file, fsync, rename, fsync the directory), which is the copy that counts, and hands each saved
// version to a ConfigMap mirror, so that another operator on another machine sees the run and can
// resume it. The mirror writes in its own goroutine, outside the journal's lock: a slow or
// unreachable apiserver never holds up a step; only the newest version is written.
type Journal struct {
	mu     sync.Mutex
	dir    string // the run's directory
	mirror *mirrorWriter
	warn   func(error)
	state  *RunState
	// AfterWrite, when set, is called after every local write with its count (1, 2, ...): the
	// crash-point tests exit the process there.
	AfterWrite func(n int)
	writes     int
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
	keepDamaged(dir, warn)
	j := &Journal{dir: dir, warn: warn, state: state}
	if mirror != nil {
		j.mirror = newMirrorWriter(mirror, state, warn)
	}
	return j, nil
}

// keepDamaged moves a journal that does not parse (the run goes on from its cluster copy) to
// journal.damaged-TIME.json beside it before the first write replaces it: nothing is lost.
func keepDamaged(dir string, warn func(error)) {
	path := filepath.Join(dir, "journal.json")
	data, err := os.ReadFile(path)
	if err != nil || json.Valid(data) {
		return
	}
	aside := filepath.Join(dir, "journal.damaged-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.Rename(path, aside); err != nil {
		warn(fmt.Errorf("journal: keep the damaged %s: %w", path, err))
		return
	}
	warn(fmt.Errorf("journal: the damaged %s was kept as %s; the run goes on from the cluster's copy", path, aside))
}

// StopMirror stops writing the cluster copy for good (the lock was lost: another process owns the
// run now, and its copy must not be overwritten).
func (j *Journal) StopMirror() {
	if j.mirror != nil {
		j.mirror.stop()
	}
}

// Close writes the newest version to the mirror if it can within ctx, then stops the mirror.
func (j *Journal) Close(ctx context.Context) {
	if j.mirror != nil {
		j.mirror.flush(ctx)
		j.mirror.stop()
	}
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
		// The cluster's copy still gets the newest state (a full disk here must not leave it
		// saying "running"), and the caller stops before the change this write was to record.
		if j.mirror != nil {
			j.mirror.offer(data, j.state.Status)
		}
		return &JournalWriteError{ID: j.state.ID, Path: filepath.Join(j.dir, "journal.json"), Mirrored: j.mirror != nil, Err: err}
	}
	j.writes++
	if j.AfterWrite != nil {
		j.AfterWrite(j.writes)
	}
	if j.mirror != nil {
		j.mirror.offer(data, j.state.Status)
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

// JournalWriteError: the local journal could not be written (a full or read-only disk). The run
// stops before the change the write was to record; the cluster's copy was given the newest state.
type JournalWriteError struct {
	ID, Path string
	Mirrored bool // the cluster's copy was offered the state this write could not keep
	Err      error
}

func (e *JournalWriteError) Error() string {
	msg := fmt.Sprintf("journal: write %s: %v: free space in %s (or fix its permissions), then `drydock resume %s`", e.Path, e.Err, filepath.Dir(filepath.Dir(e.Path)), e.ID)
	if e.Mirrored {
		msg += fmt.Sprintf("; or, from a disk that can write, `drydock resume %s --state-dir DIR` continues from the cluster's copy", e.ID)
	}
	return msg
}

func (e *JournalWriteError) Unwrap() error { return e.Err }

// DamagedJournalError: a run's local journal cannot be read (truncated, not JSON).
type DamagedJournalError struct {
	ID, Path string
	Err      error
}

func (e *DamagedJournalError) Error() string {
	return fmt.Sprintf("run %q: journal %s is damaged (%v): with the cluster reachable, drydock reads the run's copy there (ConfigMap %s in its state namespace) instead", e.ID, e.Path, e.Err, ConfigMapName(e.ID))
}

func (e *DamagedJournalError) Unwrap() error { return e.Err }

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
		return nil, &DamagedJournalError{ID: id, Path: filepath.Join(stateDir, "runs", id, "journal.json"), Err: err}
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
		var damaged *DamagedJournalError
		switch {
		case errors.As(err, &damaged):
			st = &RunState{ID: e.Name(), Status: RunDamaged, Damage: err.Error()}
			if info, ierr := e.Info(); ierr == nil {
				st.Created, st.Updated = info.ModTime(), info.ModTime()
			}
		case err != nil:
			continue // a folder without a journal: a run refused before its first write
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

// MaxMirrorBytes is the most journal a ConfigMap holds: an object must stay under etcd's request
// limit of 1.5 MiB and the ConfigMap limit of 1 MiB, with room for its metadata. A larger journal
// is stored gzipped; one still too large is not mirrored (the local journal is the one that counts).
const MaxMirrorBytes = 900 << 10

// ErrMirrorConflict: the cluster copy changed since this process last wrote it.
var ErrMirrorConflict = errors.New("the cluster copy was changed by another process")

// Save writes the journal with optimistic concurrency: rv is the resourceVersion this process last
// wrote ("" for the first write of a session, which reads the current one first; a holder of the
// lock is the only writer). It returns the new resourceVersion; a conflict is ErrMirrorConflict.
func (m *ConfigMapMirror) Save(ctx context.Context, st *RunState, data []byte, rv string) (string, error) {
	return m.save(ctx, st.ID, st.Status, data, rv)
}

func (m *ConfigMapMirror) save(ctx context.Context, id string, status RunStatus, data []byte, rv string) (string, error) {
	cms := m.Client.CoreV1().ConfigMaps(m.Namespace)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ConfigMapName(id),
			Namespace: m.Namespace,
			Labels:    map[string]string{LabelRunID: id, LabelPartOf: "drydock", "drydock.dev/status": string(status)},
		},
	}
	if len(data) <= MaxMirrorBytes {
		cm.Data = map[string]string{journalKey: string(data)}
	} else {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(data)
		_ = zw.Close()
		if buf.Len() > MaxMirrorBytes {
			return rv, fmt.Errorf("the journal is %d bytes, %d gzipped: over the %d a ConfigMap can hold; it stays on this machine only", len(data), buf.Len(), MaxMirrorBytes)
		}
		cm.BinaryData = map[string][]byte{journalGzKey: buf.Bytes()}
	}
	if rv == "" {
		cur, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			created, err := cms.Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return "", ErrMirrorConflict
			}
			if err != nil {
				return "", err
			}
			return created.ResourceVersion, nil
		case err != nil:
			return "", err
		}
		rv = cur.ResourceVersion
	}
	cm.ResourceVersion = rv
	updated, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return rv, ErrMirrorConflict
	}
	if apierrors.IsNotFound(err) {
		// Deleted (pruned, or by hand) since: write it again.
		created, cerr := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm.Name, Namespace: cm.Namespace, Labels: cm.Labels},
			Data: cm.Data, BinaryData: cm.BinaryData}, metav1.CreateOptions{})
		if cerr != nil {
			return "", cerr
		}
		return created.ResourceVersion, nil
	}
	if err != nil {
		return rv, err
	}
	return updated.ResourceVersion, nil
}

const (
	journalKey   = "journal.json"
	journalGzKey = "journal.json.gz"
)

// rawJournal is the journal text a ConfigMap holds, plain or gzipped.
func rawJournal(cm *corev1.ConfigMap) ([]byte, error) {
	gz, ok := cm.BinaryData[journalGzKey]
	if !ok {
		return []byte(cm.Data[journalKey]), nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, 64<<20))
}

// journalOf reads the journal a ConfigMap holds.
func journalOf(cm *corev1.ConfigMap) (*RunState, error) {
	data, err := rawJournal(cm)
	if err != nil {
		return nil, err
	}
	var st RunState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// mirrorWriter writes the newest journal version to the ConfigMap in its own goroutine, retrying
// transient errors with backoff; versions offered while a write is under way replace each other.
type mirrorWriter struct {
	m    *ConfigMapMirror
	id   string
	warn func(error)

	ctx    context.Context // cancelled by stop: no write after it
	cancel context.CancelFunc
	wake   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	next     []byte // the newest version not yet written
	status   RunStatus
	seq      uint64        // versions offered
	written  uint64        // versions written or given up on
	progress chan struct{} // closed when written moves
}

func newMirrorWriter(m *ConfigMapMirror, st *RunState, warn func(error)) *mirrorWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &mirrorWriter{m: m, id: st.ID, warn: warn, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}), progress: make(chan struct{})}
	go w.loop()
	return w
}

func (w *mirrorWriter) offer(data []byte, status RunStatus) {
	w.mu.Lock()
	w.next, w.status = data, status
	w.seq++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop ends the writer: nothing is written after it returns.
func (w *mirrorWriter) stop() {
	w.cancel()
	<-w.done
}

// flush waits until every version offered so far is written (or given up on), or ctx ends.
func (w *mirrorWriter) flush(ctx context.Context) {
	w.mu.Lock()
	want := w.seq
	w.mu.Unlock()
	for {
		w.mu.Lock()
		written, progress := w.written, w.progress
		w.mu.Unlock()
		if written >= want {
			return
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return
		case <-w.done:
			return
		}
	}
}

func (w *mirrorWriter) loop() {
	defer close(w.done)
	rv := ""
	// Versions whose write may have reached the apiserver though the answer was lost: a conflict
	// with one of them in the ConfigMap is our own write, not another process's.
	var unsure [][]byte
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			data, status, seq := w.next, w.status, w.seq
			w.next = nil
			w.mu.Unlock()
			if data == nil {
				break
			}
			unsure = append(unsure, data)
			err := kube.Retry(w.ctx, nil, func(ctx context.Context) error {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				newRV, err := w.m.save(rctx, w.id, status, data, rv)
				if errors.Is(err, ErrMirrorConflict) {
					if curRV, ours := w.m.holds(rctx, w.id, unsure); ours {
						// Our own earlier write, whose answer was lost: write again on top of it.
						newRV, err = w.m.save(rctx, w.id, status, data, curRV)
					}
				}
				if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					return apierrors.NewTimeoutError(err.Error(), 0) // a slow apiserver: try again
				}
				if err == nil {
					rv, unsure = newRV, nil
				}
				return err
			})
			switch {
			case w.ctx.Err() != nil:
				return
			case errors.Is(err, ErrMirrorConflict):
				w.warn(fmt.Errorf("mirror the journal to ConfigMap %s/%s: %w: drydock stops writing it; the local journal counts", w.m.Namespace, ConfigMapName(w.id), err))
				w.cancel()
			case err != nil:
				w.warn(fmt.Errorf("mirror the journal to ConfigMap %s/%s: %w", w.m.Namespace, ConfigMapName(w.id), err))
			}
			w.mu.Lock()
			w.written = seq
			close(w.progress)
			w.progress = make(chan struct{})
			w.mu.Unlock()
		}
	}
}

// holds says whether the ConfigMap holds one of the given journal versions, and its resourceVersion.
func (m *ConfigMapMirror) holds(ctx context.Context, id string, versions [][]byte) (string, bool) {
	cm, err := m.Client.CoreV1().ConfigMaps(m.Namespace).Get(ctx, ConfigMapName(id), metav1.GetOptions{})
	if err != nil {
		return "", false
	}
	data, err := rawJournal(cm)
	if err != nil {
		return "", false
	}
	for _, v := range versions {
		if bytes.Equal(v, data) {
			return cm.ResourceVersion, true
		}
	}
	return "", false
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
	st, err := journalOf(cm)
	if err != nil {
		return nil, fmt.Errorf("run %q: the journal in ConfigMap %s/%s is damaged: %w", id, m.Namespace, cm.Name, err)
	}
	return st, nil
}

// List returns the runs mirrored in the cluster, newest first.
func (m *ConfigMapMirror) List(ctx context.Context) ([]*RunState, error) {
	list, err := m.Client.CoreV1().ConfigMaps(m.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelPartOf + "=drydock," + LabelRunID})
	if err != nil {
		return nil, err
	}
	var runs []*RunState
	for i := range list.Items {
		if st, err := journalOf(&list.Items[i]); err == nil {
			runs = append(runs, st)
		}
	}
	sort.Slice(runs, func(i, k int) bool { return runs[i].Created.After(runs[k].Created) })
	return runs, nil
}

// DefaultKeepRuns is how many finished runs keep their journal ConfigMap in the cluster.
const DefaultKeepRuns = 20

// Prune deletes the journal ConfigMaps of finished runs (succeeded, rolled back) beyond the newest
// keep of them; a run that can still be resumed or rolled back is never pruned. It returns the ids
// of the runs it pruned.
func (m *ConfigMapMirror) Prune(ctx context.Context, keep int) ([]string, error) {
	runs, err := m.List(ctx) // newest first
	if err != nil {
		return nil, fmt.Errorf("prune runs: list ConfigMaps in %s: %w", m.Namespace, err)
	}
	var pruned []string
	var errs []error
	finished := 0
	for _, r := range runs {
		if r.Status != RunSucceeded && r.Status != RunRolledBack && r.Status != RunPartlyRolledBack {
			continue
		}
		finished++
		if finished <= keep {
			continue
		}
		err := m.Client.CoreV1().ConfigMaps(m.Namespace).Delete(ctx, ConfigMapName(r.ID), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("prune run %s: delete ConfigMap %s/%s: %w", r.ID, m.Namespace, ConfigMapName(r.ID), err))
			continue
		}
		pruned = append(pruned, r.ID)
	}
	return pruned, errors.Join(errs...)
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
