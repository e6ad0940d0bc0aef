package runbook

// The fast tier for a journal that cannot be read or written (issue 30, item 10): a truncated
// journal is named with its path, listed as damaged, and kept aside (not overwritten) when a run
// goes on from its cluster copy; a local write that fails (a full disk) still gives the cluster copy
// the newest state, and its error names the file and the ways on.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// truncated writes run id's journal to stateDir and cuts it short, as a crash mid-write on a
// filesystem without atomic renames, or a full disk, leaves it.
func truncated(t *testing.T, stateDir, id string) string {
	t.Helper()
	path := filepath.Join(stateDir, "runs", id, "journal.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"id": "`+id+`", "status": "runn`), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDamagedJournalIsNamedListedAndKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id := "20261207-0100-dead"
	path := truncated(t, dir, id)

	_, err := ReadRun(dir, id)
	var damaged *DamagedJournalError
	if !errors.As(err, &damaged) || damaged.Path != path || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), ConfigMapName(id)) {
		t.Fatalf("ReadRun of a truncated journal: %v; want a DamagedJournalError naming %s and the cluster copy", err, path)
	}

	runs, err := ListRuns(dir)
	if err != nil || len(runs) != 1 || runs[0].ID != id || runs[0].Status != RunDamaged || !strings.Contains(runs[0].Damage, path) {
		t.Fatalf("ListRuns: %v %+v; want the run listed as damaged", err, runs)
	}
	if runs[0].Status.Resumable() {
		t.Fatal("a damaged listing must never be picked as resumable")
	}

	// The run goes on from its copy: the first write must not destroy the damaged file.
	var warned []error
	j, err := OpenJournal(dir, &RunState{ID: id, Status: RunRunning}, nil, func(err error) { warned = append(warned, err) })
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Update(context.Background(), func(*RunState) {}); err != nil {
		t.Fatal(err)
	}
	kept, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "journal.damaged-*.json"))
	if len(kept) != 1 || len(warned) != 1 || !strings.Contains(warned[0].Error(), kept[0]) {
		t.Fatalf("damaged journal kept as %v, warnings %v; want it kept aside and named", kept, warned)
	}
	if st, err := ReadRun(dir, id); err != nil || st.Status != RunRunning {
		t.Fatalf("after the write: %v %+v", err, st)
	}
}

func TestJournalWriteFailureStillReachesTheClusterCopy(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	versioned(c)
	j, _, _ := newTestJournal(t, c)
	if err := j.Update(context.Background(), func(r *RunState) { r.Message = "before" }); err != nil {
		t.Fatal(err)
	}
	// The run's folder can no longer be written: a temporary file cannot be made in it.
	if err := os.RemoveAll(j.dir); err != nil {
		t.Fatal(err)
	}
	err := j.Update(context.Background(), func(r *RunState) { r.Status, r.Message = RunFailed, "disk full" })
	var werr *JournalWriteError
	if !errors.As(err, &werr) || !werr.Mirrored || !strings.Contains(err.Error(), filepath.Join(j.dir, "journal.json")) ||
		!strings.Contains(err.Error(), "--state-dir") || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("failed write: %v; want a JournalWriteError naming the file and the way on", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j.Close(ctx)
	if got := stored(t, c, j.State().ID); got.Status != RunFailed || got.Message != "disk full" {
		t.Fatalf("cluster copy: %s %q; want the state the disk could not keep", got.Status, got.Message)
	}
}
