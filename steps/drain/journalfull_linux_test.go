//go:build linux

package drain_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// smallDisk mounts a 256 KiB tmpfs for the run's state directory (the test needs root), and
// returns it with a function that fills it up.
func smallDisk(t *testing.T) (dir string, fill func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("mounting a small tmpfs for the state directory needs root: CI must run make test as root, or this proof is lost")
		}
		t.Skip("mounting a small tmpfs for the state directory needs root")
	}
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir, func() {
		f, err := os.Create(filepath.Join(dir, "filler"))
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		chunk := make([]byte, 4096)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Error(err)
				}
				return
			}
		}
	}
}

// TestJournalFullStopsTheDrain: the state directory fills up after the first eviction of a
// three-pod drain. The journal write that records the next eviction fails, so that eviction is
// never sent; the failure rule is applied to the node and said by node, with the journal's path:
// uncordoned by default, kept cordoned (as the journal records) with keepCordoned.
func TestJournalFullStopsTheDrain(t *testing.T) {
	simcluster.Need(t)
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "uncordon", true: "keepCordoned"}[keep], func(t *testing.T) {
			dir, fill := smallDisk(t)
			s := newScenario(t, 2)
			node := s.nodes[0]
			s.deployOn("web", 3, node)
			s.stateDir = dir
			var (
				once    sync.Once
				evicted atomic.Int32
			)
			s.hook = func(_ *runbook.Engine, ev runbook.Event) {
				if p, ok := ev.(*runbook.PodChanged); ok && p.State == runbook.PodEvicted {
					evicted.Add(1)
					once.Do(fill)
				}
			}
			_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s], concurrency: 1, keepCordoned: %v}", node, keep), "1m")
			if err == nil {
				t.Fatalf("the drain succeeded on a full disk:\n%s", rec.Text())
			}
			if n := evicted.Load(); n != 1 {
				t.Fatalf("%d evictions, want 1: an eviction was sent after the journal write failed\n%s", n, rec.Text())
			}
			pods, lerr := cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
			if lerr != nil {
				t.Fatal(lerr)
			}
			staying := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					staying++
				}
			}
			if staying != 2 {
				t.Fatalf("%d pods left untouched on %s, want 2", staying, node)
			}
			if got := s.node(node).Spec.Unschedulable; got != keep {
				t.Fatalf("node %s unschedulable %v, want %v (keepCordoned %v)", node, got, keep, keep)
			}
			// Said by node, with the journal's path and what to do.
			want := "ERROR: node/" + node + ": stays cordoned (keepCordoned)"
			if !keep {
				want = "WARNING: node/" + node + ": uncordoned (the failure rule)"
			}
			var line string
			for _, l := range strings.Split(rec.Text(), "\n") {
				if strings.Contains(l, want) {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, dir) || !strings.Contains(line, "no space left on device") {
				t.Fatalf("no line says what became of %s with the journal's path %s:\n%s\nerror: %v", node, dir, rec.Text(), err)
			}
		})
	}
}
