package simcluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drydock-dev/drydock/internal/loadgen"
)

// Load is a load generator (internal/cmd/loadgen) sending requests from the real nodes' network,
// where Services' ClusterIPs route: Stop ends it and adds up what it saw.
type Load struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	seconds []loadgen.Second
	done    chan struct{}
	stderr  strings.Builder
}

// StartLoad sends rate requests a second to http://serviceIP/ for at most max requests, from the
// moment the Service answers (kube-proxy routes it: a Service just made is refused until then). The
// only addresses it may reach are the Service's and the real nodes' networks.
func (c *Cluster) StartLoad(ctx context.Context, serviceIP string, rate, max int) (*Load, error) {
	bin, err := c.loadgen(ctx)
	if err != nil {
		return nil, err
	}
	allow := strings.Join(append(c.RealNetworks(), serviceIP+"/32"), ",")
	if err := c.waitRouted(ctx, bin, serviceIP, allow); err != nil {
		return nil, err
	}
	cmd, err := c.RealNetCommand(ctx, bin, "-target", "http://"+serviceIP+"/", "-allow", allow,
		"-rate", strconv.Itoa(rate), "-duration", "1h", "-max-requests", strconv.Itoa(max))
	if err != nil {
		return nil, err
	}
	l := &Load{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &l.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("simcluster: start loadgen: %w", err)
	}
	go l.read(stdout)
	return l, nil
}

// loadgen builds the load generator once per cluster.
func (c *Cluster) loadgen(ctx context.Context) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(c.WorkDir, "realnet", "loadgen")
	if _, err := os.Stat(bin); err != nil {
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./internal/cmd/loadgen")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("simcluster: build loadgen: %w: %s", err, out)
		}
	}
	return bin, nil
}

// waitRouted sends 5 requests at a time to the Service until all of them are answered, for at most
// a minute.
func (c *Cluster) waitRouted(ctx context.Context, bin, serviceIP, allow string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		cmd, err := c.RealNetCommand(ctx, bin, "-target", "http://"+serviceIP+"/", "-allow", allow, "-rate", "5", "-duration", "1s", "-max-requests", "5")
		if err != nil {
			return err
		}
		out, err := cmd.Output()
		sent, failed := 0, 0
		for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
			var sec loadgen.Second
			if json.Unmarshal(line, &sec) == nil {
				sent, failed = sent+sec.Sent, failed+sec.Failed
			}
		}
		if err == nil && sent == 5 && failed == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d of %d failed", failed, sent)
			}
			return fmt.Errorf("simcluster: the Service %s did not answer 5 requests in a row within a minute: %w", serviceIP, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *Load) read(r io.Reader) {
	defer close(l.done)
	s := bufio.NewScanner(r)
	for s.Scan() {
		var sec loadgen.Second
		if json.Unmarshal(s.Bytes(), &sec) == nil {
			l.mu.Lock()
			l.seconds = append(l.seconds, sec)
			l.mu.Unlock()
		}
	}
}

// Seconds are what the load saw so far, a second each.
func (l *Load) Seconds() []loadgen.Second {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loadgen.Second(nil), l.seconds...)
}

// Stop ends the load (the seconds under way are still reported) and adds up all it saw.
func (l *Load) Stop() (loadgen.Summary, error) {
	_ = l.cmd.Process.Signal(os.Interrupt)
	<-l.done
	err := l.cmd.Wait()
	all := l.Seconds()
	if len(all) == 0 {
		if err == nil {
			err = errors.New("it exited")
		}
		return loadgen.Summary{}, fmt.Errorf("simcluster: the load generator reported nothing (%w): %s", err, l.stderr.String())
	}
	return loadgen.Summarize(all, 0, 0), nil
}
