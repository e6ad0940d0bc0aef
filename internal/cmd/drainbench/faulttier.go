package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// faultTier runs the fault tier (steps/rollout's TestRolloutUnderInjectedFaults: a drain, a canary
// and two node groups under injected faults, the invariants checked after each seed) over seeds, a
// range beyond the 20 that `make test` runs ("21-60"), and prints its summary. It runs the test
// itself, from the module's root as make bench does, so that the bench and the test tier check
// the same invariants the same way.
func faultTier(seeds string) error {
	fmt.Printf("\nfault tier: seeds %s (make test runs 1-20)\n", seeds)
	cmd := exec.Command("go", "test", "-count=1", "-timeout", "3h", "-v", "-run", "^TestRolloutUnderInjectedFaults$", "./steps/rollout")
	cmd.Env = append(os.Environ(), "DRYDOCK_FAULT_SEEDS="+seeds)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("fault tier: %w", err)
	}
	var tail []string
	failed := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "fault tier:"), strings.Contains(line, "the run failed under faults"):
			fmt.Println("  " + strings.TrimSpace(line))
		case strings.HasPrefix(strings.TrimSpace(line), "--- FAIL"):
			failed++
			fmt.Println("  " + strings.TrimSpace(line))
		}
		tail = append(tail, line)
		if len(tail) > 200 {
			tail = tail[1:]
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("fault tier, seeds %s: %d failed (%w):\n%s", seeds, failed, err, strings.Join(tail, "\n"))
	}
	fmt.Printf("fault tier: seeds %s passed in %s\n", seeds, time.Since(start).Round(time.Second))
	return nil
}
