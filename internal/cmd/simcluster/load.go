package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/loadgen"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// loadOptions are `simcluster load`'s: requests through a Service's ClusterIP until interrupted.
type loadOptions struct {
	service, out, readyFile string
	rate                    int
}

// runLoad sends o.rate requests a second through the ClusterIP of the Service o.service
// (NAMESPACE/NAME) from the real nodes' network, from the moment it answers until ctx ends (at most
// an hour), then writes every second it saw to o.out as JSON lines (loadgen.Second).
func runLoad(ctx context.Context, c *simcluster.Cluster, o loadOptions) error {
	ns, name, ok := strings.Cut(o.service, "/")
	if !ok || o.out == "" || o.rate < 1 {
		return errors.New("load needs --service NAMESPACE/NAME, --out FILE and --rate ≥ 1")
	}
	svc, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("load: Service %s: %w", o.service, err)
	}
	// Not ctx: the load generator must outlive the signal that ends it, to report its last seconds.
	l, err := c.StartLoad(context.WithoutCancel(ctx), svc.Spec.ClusterIP, o.rate, o.rate*int(time.Hour/time.Second))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "simcluster: sending %d requests a second to Service %s (ClusterIP %s)\n", o.rate, o.service, svc.Spec.ClusterIP)
	if o.readyFile != "" {
		if err := os.WriteFile(o.readyFile, []byte("ready\n"), 0o644); err != nil {
			_, _ = l.Stop()
			return err
		}
	}
	<-ctx.Done()
	sum, err := l.Stop()
	if err != nil {
		return err
	}
	if err := writeSeconds(o.out, l.Seconds()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "simcluster: load stopped: %d requests sent, %d failed\n", sum.Sent, sum.Failed)
	return nil
}

func writeSeconds(path string, seconds []loadgen.Second) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i := range seconds {
		if err := enc.Encode(&seconds[i]); err != nil {
			_ = f.Close()
			return err
		}
	}
	return f.Close()
}

func readSeconds(path string) ([]loadgen.Second, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []loadgen.Second
	s := bufio.NewScanner(f)
	for s.Scan() {
		var sec loadgen.Second
		if err := json.Unmarshal(s.Bytes(), &sec); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, sec)
	}
	return out, s.Err()
}

// loadReport prints, for the newest run in stateDir (or the run id), the requests sent, failed and
// their p99 latency in each phase of it: each step, a node step's groups each on a line of its own,
// and the whole run.
func loadReport(w io.Writer, secondsFile, stateDir, id string) error {
	seconds, err := readSeconds(secondsFile)
	if err != nil {
		return fmt.Errorf("load-report: %w", err)
	}
	if id == "" {
		runs, err := runbook.ListRuns(stateDir)
		if err != nil || len(runs) == 0 {
			return errors.Join(fmt.Errorf("load-report: no run in %s: give --state-dir the directory drydock run used", stateDir), err)
		}
		id = runs[0].ID
	}
	events, err := runbook.ReadEventLog(stateDir, id)
	if err != nil {
		return fmt.Errorf("load-report: %w", err)
	}
	if len(events) == 0 {
		return fmt.Errorf("load-report: run %s has no event log in %s", id, stateDir)
	}
	fmt.Fprintf(w, "%-24s %8s %7s %7s %8s\n", "PHASE", "TOOK", "SENT", "FAILED", "P99")
	for _, p := range phases(events) {
		s := loadgen.Summarize(seconds, p.from.Unix(), p.to.Unix()+1)
		p99 := "-"
		if s.Latency.Count() > 0 {
			p99 = s.Latency.Quantile(0.99).Round(100 * time.Microsecond).String()
		}
		fmt.Fprintf(w, "%-24s %8s %7d %7d %8s%s\n", p.name, p.to.Sub(p.from).Round(time.Second), s.Sent, s.Failed, p99, errorKinds(s.Errors))
	}
	return nil
}

func errorKinds(errs map[string]int) string {
	if len(errs) == 0 {
		return ""
	}
	b, _ := json.Marshal(errs)
	return "  " + string(b)
}
