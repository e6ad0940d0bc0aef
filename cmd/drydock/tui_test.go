package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// tmuxSession runs a command in a detached tmux session of its own server (80x24 is too small for
// nothing here, but the screen is checked at 100x30).
type tmuxSession struct {
	t      *testing.T
	socket string
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string { return s.tmux("capture-pane", "-p", "-t", "e2e") }

func (s *tmuxSession) waitFor(text string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		scr := s.screen()
		if strings.Contains(scr, text) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen did not show %q within %s:\n%s", text, timeout, scr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestTUIEndToEnd runs the real binary in tmux against the simulated cluster: a canary with its
// pause point; the test waits for the pause modal, presses c, waits for the run to finish, checks
// the final screen, quits with q and checks the exit code.
func TestTUIEndToEnd(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	for _, n := range []string{"tui-1", "tui-2"} {
		if _, err := cluster.CreateNode(ctx, n, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"drydock.dev/group": "tui"}}); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	rb := writeRunbook(t, "tui", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        selector: drydock.dev/group=tui
        soak: 1s
        action:
          exec: [%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']
          readyTimeout: 1m
    - name: after
      type: exec
      with: {command: [sh, -c, "echo the fleet would follow"]}
`, filepath.Join(bin, "kubectl"), cluster.Kubeconfig))
	dir := t.TempDir()
	exitFile := filepath.Join(dir, "exit")
	s := &tmuxSession{t: t, socket: fmt.Sprintf("drydock-e2e-%d", os.Getpid())}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	cmdline := fmt.Sprintf("%q run %q --kubeconfig %q --state-dir %q --no-mirror; echo $? > %q; sleep 600",
		drydockBinary(t), rb, cluster.Kubeconfig, filepath.Join(dir, "state"), exitFile)
	s.tmux("new-session", "-d", "-s", "e2e", "-x", "100", "-y", "30", "-e", "TERM=xterm-256color", cmdline)

	scr := s.waitFor("Pause point after step canary", 90*time.Second)
	for _, want := range []string{"drydock run", "‖ canary", "· after", "[waiting for you]", "Continue", "soak: healthy throughout", "nodes: upgraded 1"} {
		if !strings.Contains(scr, want) {
			t.Errorf("pause screen lacks %q:\n%s", want, scr)
		}
	}
	s.tmux("send-keys", "-t", "e2e", "c")
	scr = s.waitFor("[succeeded]", 60*time.Second)
	for _, want := range []string{"✓ canary", "✓ after", "every step done"} {
		if !strings.Contains(scr, want) {
			t.Errorf("final screen lacks %q:\n%s", want, scr)
		}
	}
	s.tmux("send-keys", "-t", "e2e", "q")
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := os.ReadFile(exitFile)
		if err == nil && len(b) > 0 {
			if code := strings.TrimSpace(string(b)); code != "0" {
				t.Errorf("exit %s, want 0\n%s", code, s.screen())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drydock did not exit after q:\n%s", s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if scr := s.screen(); !strings.Contains(scr, "drydock: run ") || !strings.Contains(scr, "succeeded: every step done") {
		t.Errorf("no summary line after the screen closed:\n%s", scr)
	}
}
