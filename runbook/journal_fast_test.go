package runbook

// The fast tier for the journal's cluster copy: written outside the journal's lock, with
// resourceVersion preconditions, never after StopMirror, within the object size limit, retried on
// transient errors; retention of finished runs. A fake clientset plays the apiserver, with a
// reactor that enforces resourceVersions as the real one does.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// versioned makes the fake clientset keep and check resourceVersions of ConfigMaps.
func versioned(c *fake.Clientset) {
	var mu sync.Mutex
	n := 0
	c.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		switch a.GetVerb() {
		case "create":
			n++
			a.(k8stesting.CreateAction).GetObject().(*corev1.ConfigMap).ResourceVersion = strconv.Itoa(n)
		case "update":
			cm := a.(k8stesting.UpdateAction).GetObject().(*corev1.ConfigMap)
			cur, err := c.Tracker().Get(corev1.SchemeGroupVersion.WithResource("configmaps"), cm.Namespace, cm.Name)
			if err != nil {
				return true, nil, err
			}
			if cm.ResourceVersion != "" && cm.ResourceVersion != cur.(*corev1.ConfigMap).ResourceVersion {
				return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), cm.Name, errors.New("the object has been modified"))
			}
			n++
			cm.ResourceVersion = strconv.Itoa(n)
		}
		return false, nil, nil
	})
}

func newTestJournal(t *testing.T, c *fake.Clientset) (*Journal, *[]error, *sync.Mutex) {
	t.Helper()
	var mu sync.Mutex
	var warnings []error
	st := &RunState{ID: "20261201-0000-abcd", StateNS: "ns", Status: RunRunning, Steps: []StepState{{Name: "s"}}}
	j, err := OpenJournal(t.TempDir(), st, &ConfigMapMirror{Client: c, Namespace: "ns"}, func(err error) {
		mu.Lock()
		warnings = append(warnings, err)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return j, &warnings, &mu
}

func stored(t *testing.T, c *fake.Clientset, id string) *RunState {
	t.Helper()
	st, err := (&ConfigMapMirror{Client: c, Namespace: "ns"}).Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMirrorWritesOutsideTheJournalLock: a slow apiserver does not slow the steps; the newest
// version reaches the cluster when the journal closes.
func TestMirrorWritesOutsideTheJournalLock(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	versioned(c)
	c.PrependReactor("*", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		time.Sleep(300 * time.Millisecond)
		return false, nil, nil
	})
	j, warnings, _ := newTestJournal(t, c)
	start := time.Now()
	for i := range 20 {
		if err := j.Update(context.Background(), func(r *RunState) { r.Message = fmt.Sprint("update ", i) }); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("20 journal updates took %v: the mirror's writes held them up", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j.Close(ctx)
	if got := stored(t, c, j.State().ID).Message; got != "update 19" {
		t.Fatalf("cluster copy says %q, want the newest version", got)
	}
	if len(*warnings) != 0 {
		t.Fatalf("warnings: %v", *warnings)
	}
}

// TestMirrorRetriesTransientErrors: a 503 or two do not lose the cluster copy.
func TestMirrorRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	versioned(c)
	var mu sync.Mutex
	fails := 2
	c.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if a.GetVerb() != "get" && fails > 0 {
			fails--
			return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
		}
		return false, nil, nil
	})
	j, warnings, _ := newTestJournal(t, c)
	if err := j.Update(context.Background(), func(r *RunState) { r.Message = "hello" }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j.Close(ctx)
	if got := stored(t, c, j.State().ID).Message; got != "hello" {
		t.Fatalf("cluster copy says %q", got)
	}
	if len(*warnings) != 0 {
		t.Fatalf("warnings: %v", *warnings)
	}
}

// TestMirrorNeverOverwritesAnotherWriter: the ConfigMap changed under us (another process resumed
// the run elsewhere): the next write conflicts, drydock warns and stops writing the cluster copy.
func TestMirrorNeverOverwritesAnotherWriter(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	versioned(c)
	j, warnings, mu := newTestJournal(t, c)
	ctx := context.Background()
	if err := j.Update(ctx, func(r *RunState) { r.Message = "mine" }); err != nil {
		t.Fatal(err)
	}
	j.mirror.flush(ctx)
	// Another process writes its own version.
	cms := c.CoreV1().ConfigMaps("ns")
	cm, err := cms.Get(ctx, ConfigMapName(j.State().ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[journalKey] = strings.Replace(cm.Data[journalKey], `"message": "mine"`, `"message": "theirs"`, 1)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := j.Update(ctx, func(r *RunState) { r.Message = "mine again" }); err != nil {
		t.Fatal(err)
	}
	j.Close(ctx)
	if got := stored(t, c, j.State().ID).Message; got != "theirs" {
		t.Fatalf("cluster copy says %q: the other writer's version was overwritten", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*warnings) != 1 || !errors.Is((*warnings)[0], ErrMirrorConflict) {
		t.Fatalf("warnings %v, want one conflict", *warnings)
	}
}

// TestMirrorStopsWhenTheLockIsLost: after StopMirror, no request reaches the ConfigMap.
func TestMirrorStopsWhenTheLockIsLost(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	versioned(c)
	j, _, _ := newTestJournal(t, c)
	ctx := context.Background()
	if err := j.Update(ctx, func(r *RunState) { r.Message = "before" }); err != nil {
		t.Fatal(err)
	}
	j.mirror.flush(ctx)
	j.StopMirror()
	c.ClearActions()
	for range 5 {
		if err := j.Update(ctx, func(r *RunState) { r.Message = "after" }); err != nil {
			t.Fatal(err)
		}
	}
	j.Close(ctx)
	if n := len(c.Actions()); n != 0 {
		t.Fatalf("%d requests after the lock was lost: %v", n, c.Actions())
	}
}

// TestMirrorSizeLimit: a journal over the ConfigMap limit is stored gzipped and loads back; one
// that does not fit even gzipped is not written, with a warning that says so.
func TestMirrorSizeLimit(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	versioned(c)
	j, warnings, mu := newTestJournal(t, c)
	ctx := context.Background()
	big := strings.Repeat("node/general-1 drained; ", 60000) // 1.4 MB, compresses well
	if err := j.Update(ctx, func(r *RunState) { r.RunbookText = big }); err != nil {
		t.Fatal(err)
	}
	j.mirror.flush(ctx)
	cm, err := c.CoreV1().ConfigMaps("ns").Get(ctx, ConfigMapName(j.State().ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.BinaryData[journalGzKey]; !ok || cm.Size() > MaxMirrorBytes+64<<10 {
		t.Fatalf("a %d-byte journal is stored as %d bytes, keys %v", len(big), cm.Size(), cm.BinaryData)
	}
	if got := stored(t, c, j.State().ID).RunbookText; got != big {
		t.Fatal("the gzipped journal does not load back")
	}
	noise := make([]byte, 1<<20)
	_, _ = rand.Read(noise)
	if err := j.Update(ctx, func(r *RunState) { r.RunbookText = hex.EncodeToString(noise) }); err != nil {
		t.Fatal(err)
	}
	j.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(*warnings) != 1 || !strings.Contains((*warnings)[0].Error(), "stays on this machine only") {
		t.Fatalf("warnings %v, want one saying the journal is too large", *warnings)
	}
}

// TestPruneKeepsTheNewestFinishedAndEveryUnfinishedRun.
func TestPruneKeepsTheNewestFinishedAndEveryUnfinishedRun(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	m := &ConfigMapMirror{Client: c, Namespace: "ns"}
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	statuses := map[string]RunStatus{}
	for i := range 30 {
		st := &RunState{ID: fmt.Sprintf("run-%02d", i), Created: base.Add(time.Duration(i) * time.Minute), Status: RunSucceeded}
		switch i % 6 {
		case 1:
			st.Status = RunFailed
		case 2:
			st.Status = RunRolledBack
		case 3:
			st.Status = RunPaused
		}
		statuses[st.ID] = st.Status
		if _, err := m.save(ctx, st.ID, st.Status, mustJSON(t, st), ""); err != nil {
			t.Fatal(err)
		}
	}
	pruned, err := m.Prune(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := m.List(ctx)
	finished := 0
	for _, r := range left {
		if r.Status == RunSucceeded || r.Status == RunRolledBack {
			finished++
		}
	}
	if finished != 5 {
		t.Fatalf("%d finished runs left, want 5", finished)
	}
	for _, id := range pruned {
		if s := statuses[id]; s != RunSucceeded && s != RunRolledBack {
			t.Fatalf("pruned %s, which is %s", id, s)
		}
		if id >= "run-23" { // the newest five finished: 29, 28, 26, 24, 23
			t.Fatalf("pruned %s, one of the newest", id)
		}
	}
	if len(left)+len(pruned) != 30 {
		t.Fatalf("%d left + %d pruned != 30", len(left), len(pruned))
	}
}

func mustJSON(t *testing.T, st *RunState) []byte {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRollbackPointReadsOldJournals: a journal written before rollback points were typed kept
// "velero-backup ns/name"; resume and rollback still find the backup in it.
func TestRollbackPointReadsOldJournals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		json string
		want RollbackPoint
	}{
		{`"velero-backup velero/drydock-r1"`, RollbackPoint{Kind: RollbackPointVeleroBackup, Namespace: "velero", Name: "drydock-r1"}},
		{`{"kind":"velero-backup","namespace":"velero","name":"b"}`, RollbackPoint{Kind: RollbackPointVeleroBackup, Namespace: "velero", Name: "b"}},
	} {
		var st RunState
		if err := json.Unmarshal([]byte(`{"id":"r1","steps":[{"name":"backup","status":"done","rollbackPoint":`+tc.json+`}]}`), &st); err != nil {
			t.Fatal(err)
		}
		if got := st.RollbackPoint(RollbackPointVeleroBackup); got == nil || *got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.json, got, tc.want)
		}
	}
}
