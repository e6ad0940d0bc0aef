package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/drydock-dev/drydock/internal/peakrss"
	"github.com/drydock-dev/drydock/internal/simcluster"
)

// measure runs a command with its output thrown away and returns its wall time and peak RSS (KiB).
func measure(args ...string) (time.Duration, int64, error) {
	cmd, peak := peakrss.Command(args[0], args[1:]...)
	t0 := time.Now()
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) { // 3: findings at --fail-on
		return 0, 0, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	wall := time.Since(t0)
	rss, err := peak()
	return wall, rss >> 10, err
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// benchFiles writes a tree of n manifest files, each with an API the target removed (a finding per
// file), and measures `drydock preflight --files-only -o json` against the same scan with table
// output, interleaved: the JSON report is streamed, so its peak memory stays near the table's.
func benchFiles(drydock string, n, reps int) error {
	dir, err := os.MkdirTemp("", "drydock-bench-files-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("team-%03d", i%300))
		if i < 300 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
		}
		text := fmt.Sprintf("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: web-%d\n  namespace: team-%03d\nspec:\n  rules:\n  - host: web-%d.example.com\n", i, i%300, i)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("ingress-%d.yaml", i)), []byte(text), 0o644); err != nil {
			return err
		}
	}
	args := func(format string) []string {
		return []string{drydock, "preflight", "--files-only", "--target", "v1.38", "--manifests", dir, "-o", format}
	}
	var jsonRSS, tableRSS []int64
	var jsonWall, tableWall []time.Duration
	for range reps {
		w, r, err := measure(args("json")...)
		if err != nil {
			return err
		}
		jsonWall, jsonRSS = append(jsonWall, w), append(jsonRSS, r)
		if w, r, err = measure(args("table")...); err != nil {
			return err
		}
		tableWall, tableRSS = append(tableWall, w), append(tableRSS, r)
	}
	j, tb := slices.Max(jsonRSS), slices.Max(tableRSS)
	fmt.Printf("\n%d manifest files, each with a removed API (max of %d runs each)\n", n, reps)
	fmt.Printf("%-40s %12s %10.1f MiB\n", "drydock preflight --files-only -o json", slices.Min(jsonWall).Round(10*time.Millisecond), float64(j)/1024)
	fmt.Printf("%-40s %12s %10.1f MiB\n", "drydock preflight --files-only (table)", slices.Min(tableWall).Round(10*time.Millisecond), float64(tb)/1024)
	fmt.Printf("ratio json/table: peak RSS %.2f (target ≤ 1.2: %s)\n", float64(j)/float64(tb), verdict(float64(j) <= 1.2*float64(tb)))
	return nil
}

// benchFleet starts k clusters, each with some objects, and measures `drydock preflight` of each
// cluster alone against `--contexts` of all of them at once: the fleet should take little more
// than its slowest cluster.
func benchFleet(ctx context.Context, drydock string, k, reps int) error {
	merged := clientcmdapi.NewConfig()
	var names []string
	for i := range k {
		c, err := simcluster.Start(ctx, simcluster.Options{})
		if err != nil {
			return err
		}
		defer c.Stop() //nolint:contextcheck // stopping must not depend on the bench's context
		if _, err := fill(ctx, c.Client, 1+i, 100, 10*(i+1)); err != nil {
			return err
		}
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("cluster-%d", i+1)
		cur := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[name], merged.AuthInfos[name] = cfg.Clusters[cur.Cluster], cfg.AuthInfos[cur.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		names = append(names, name)
	}
	kc := filepath.Join(os.TempDir(), fmt.Sprintf("drydock-bench-fleet-%d.kubeconfig", os.Getpid()))
	if err := clientcmd.WriteToFile(*merged, kc); err != nil {
		return err
	}
	defer os.Remove(kc)
	base := []string{drydock, "preflight", "--kubeconfig", kc, "--target", "v1.38", "--fail-on", "never", "-o", "json"}
	alone := map[string]time.Duration{}
	var fleet []time.Duration
	for range reps {
		for _, n := range names {
			w, _, err := measure(append(slices.Clone(base), "--context", n)...)
			if err != nil {
				return err
			}
			if alone[n] == 0 || w < alone[n] {
				alone[n] = w
			}
		}
		w, _, err := measure(append(slices.Clone(base), "--contexts", strings.Join(names, ","), "--parallel", fmt.Sprint(k))...)
		if err != nil {
			return err
		}
		fleet = append(fleet, w)
	}
	var slowest time.Duration
	fmt.Printf("\na fleet of %d clusters (best of %d runs each)\n", k, reps)
	for _, n := range names {
		fmt.Printf("%-40s %12s\n", "drydock preflight --context "+n, alone[n].Round(10*time.Millisecond))
		slowest = max(slowest, alone[n])
	}
	f := slices.Min(fleet)
	fmt.Printf("%-40s %12s\n", fmt.Sprintf("drydock preflight --contexts (all %d)", k), f.Round(10*time.Millisecond))
	fmt.Printf("ratio fleet/slowest alone: wall %.2f (target ≤ 1.5: %s)\n", f.Seconds()/slowest.Seconds(), verdict(f.Seconds() <= 1.5*slowest.Seconds()))
	return nil
}
