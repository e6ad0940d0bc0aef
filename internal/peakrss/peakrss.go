// Package peakrss measures the peak memory of a command's own process, for tests and benchmarks.
//
// The rusage os/exec returns cannot: on Linux it starts a child with vfork (CLONE_VM) and exec records
// the parent's high-water mark as the child's, so a small command started by a 300 MiB test process
// "peaks" at 300 MiB. GNU time forks for real and reports its child's own peak, so a command runs
// under /usr/bin/time (Debian's time package; make test-deps installs it).
package peakrss

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Time is GNU time.
const Time = "/usr/bin/time"

// Command is exec.Command(name, args...) run under GNU time; after it ran, Peak reads its peak RSS.
// Signals sent to the command's process reach GNU time, not the command: do not use it for a
// command that a test stops with a signal.
func Command(name string, args ...string) (*exec.Cmd, func() (int64, error)) {
	f, err := os.CreateTemp("", "peakrss-")
	if err != nil {
		return exec.Command(name, args...), func() (int64, error) { return 0, err }
	}
	_ = f.Close()
	cmd := exec.Command(Time, append([]string{"-f", "peak-rss-kib %M", "-o", f.Name(), name}, args...)...)
	return cmd, func() (int64, error) {
		defer os.Remove(f.Name())
		return read(f.Name())
	}
}

// read finds the line GNU time wrote (after its "Command exited with non-zero status" line, if any).
func read(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "peak-rss-kib "); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peakrss: %q: %w", line, err)
			}
			return kib << 10, nil
		}
	}
	return 0, errors.New("peakrss: GNU time wrote no peak: " + strings.TrimSpace(string(data)))
}

// Available says whether GNU time is installed, with the fix when it is not.
func Available() error {
	if _, err := os.Stat(Time); err != nil {
		return fmt.Errorf("peak memory is measured with GNU time (%s): install Debian's time package (make test-deps does)", Time)
	}
	return nil
}
