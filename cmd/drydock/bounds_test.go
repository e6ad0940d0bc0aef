package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drydock-dev/drydock/internal/peakrss"
)

// TestValidateBoundedOnAnyInput: whatever it is given — a 5 MB runbook of 50,000 steps, a device
// that never ends, a FIFO nobody writes — `drydock validate` answers with FILE:LINE:COL in little
// memory, or stops at SIGTERM. (Its speed is in make bench; the time bound here only catches a hang.)
func TestValidateBoundedOnAnyInput(t *testing.T) {
	if err := peakrss.Available(); err != nil {
		t.Fatal(err)
	}
	bin := drydockBinary(t)
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	var b strings.Builder
	b.WriteString("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: huge}\nspec:\n  targetVersion: v1.37.1\n  steps:\n")
	for i := 0; b.Len() < 5<<20; i++ {
		b.WriteString("    - {name: step-")
		b.WriteString(strings.Repeat("x", 20))
		b.WriteString(", type: pause, with: {message: \"a pause point that says something long enough\"}}\n")
	}
	if err := os.WriteFile(huge, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, want string
	}{
		{huge, "huge.yaml:"},
		{"/dev/zero", "/dev/zero:1:1048577: the file is more than 1 MiB"},
	} {
		var out bytes.Buffer
		cmd, peak := peakrss.Command(bin, "validate", c.path)
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("validate %s: %v, want exit 2\n%s", c.path, err, out.String())
		}
		if !strings.Contains(out.String(), c.want) || !strings.Contains(out.String(), "at most 1048576 bytes") {
			t.Fatalf("validate %s: want %q and the limit in:\n%s", c.path, c.want, out.String())
		}
		rss, err := peak()
		if err != nil {
			t.Fatal(err)
		}
		if rss > 200<<20 {
			t.Errorf("validate %s peaked at %d MiB, over 200 MiB", c.path, rss>>20)
		}
		if took > 20*time.Second {
			t.Errorf("validate %s took %v", c.path, took)
		}
		t.Logf("validate %s: exit 2 in %v, peak %d MiB", filepath.Base(c.path), took.Round(time.Millisecond), rss>>20)
	}

	fifo := filepath.Join(dir, "never.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "validate", fifo)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM once drydock is blocked opening the FIFO (a loaded machine may take longer than any
	// fixed sleep to get that far, and a Go program killed before it asks for SIGTERM just dies).
	if err := waitBlockedOnFIFO(cmd.Process.Pid, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("validate of a FIFO after SIGTERM: %v, want exit 130\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("validate ignored SIGTERM while reading a FIFO\n%s", out.String())
	}
}

// waitBlockedOnFIFO waits until a thread of process pid sleeps in the kernel waiting for the other
// end of a FIFO (its wchan is wait_for_partner).
func waitBlockedOnFIFO(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		if err != nil {
			return err
		}
		if len(tasks) == 0 {
			return fmt.Errorf("process %d has no tasks: it exited", pid)
		}
		for _, w := range tasks {
			if b, err := os.ReadFile(w); err == nil && strings.TrimSpace(string(b)) == "wait_for_partner" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d is not blocked opening the FIFO after %v", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
