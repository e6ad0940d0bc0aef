package simcluster

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestStopTakesAZombieAsExited: a member whose parent has not reaped it yet (the state of an
// apiserver kwokctl started, once it exits, until its parent waits for it) counts as stopped:
// stop returns at once instead of waiting out SIGTERM's and SIGKILL's deadlines.
func TestStopTakesAZombieAsExited(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &process{Name: "sleep", pid: cmd.Process.Pid}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st := procState(p.pid); st != "Z" {
		t.Fatalf("state %q after stop, want Z (exited, not reaped: nothing waited for it)", st)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("stop waited for its deadline on an exited process: %v", err)
	}
}

// TestProcState reads the state letter after a command name with spaces and parentheses.
func TestProcState(t *testing.T) {
	if st := procState(1 << 30); st != "" {
		t.Fatalf("a pid that cannot exist: state %q, want \"\"", st)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Just started, it may still be loading (D, uninterruptible, on a busy machine): alive is the point.
	if st := procState(cmd.Process.Pid); st != "S" && st != "R" && st != "D" {
		t.Fatalf("a sleeping command: state %q, want S, R or D (alive)", st)
	}
}
