package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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

// measureCPU runs a command like measure and returns its wall time, its own CPU time, and the CPU
// time the processes pids spent meanwhile (the clusters it talks to).
func measureCPU(pids []int, args ...string) (wall, own, others time.Duration, err error) {
	before := cpuOf(pids)
	cmd := exec.Command(args[0], args[1:]...)
	t0 := time.Now()
	err = cmd.Run()
	wall = time.Since(t0)
	if ee := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return 0, 0, 0, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), cpuOf(pids) - before, nil
}

// cpuOf sums the user and system time of the processes pids (from /proc/PID/stat, in clock ticks of
// 1/100 s, as Linux reports them to processes).
func cpuOf(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
		k, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
		ticks += u + k
	}
	return time.Duration(ticks) * 10 * time.Millisecond
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
// than its slowest cluster. It does so once per round-trip time in rtts: at 0 the clusters are
// reached directly; otherwise through a local proxy that holds every chunk of bytes rtt/2 each way,
// as a fleet's clusters are in other zones or regions. All k control planes share this machine's
// cores with drydock in every case: a remote cluster's apiserver works on its own machine.
func benchFleet(ctx context.Context, drydock string, k, reps int, rtts []time.Duration) error {
	type member struct {
		name    string
		cluster *clientcmdapi.Cluster
		user    *clientcmdapi.AuthInfo
	}
	var members []member
	var pids []int
	for i := range k {
		c, err := simcluster.Start(ctx, simcluster.Options{})
		if err != nil {
			return err
		}
		defer c.Stop() //nolint:contextcheck // stopping must not depend on the bench's context
		pids = append(pids, c.ComponentPIDs()...)
		if _, err := fill(ctx, c.Client, 1+i, 100, 10*(i+1)); err != nil {
			return err
		}
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			return err
		}
		cur := cfg.Contexts[cfg.CurrentContext]
		members = append(members, member{fmt.Sprintf("cluster-%d", i+1), cfg.Clusters[cur.Cluster], cfg.AuthInfos[cur.AuthInfo]})
	}
	fmt.Printf("\na fleet of %d clusters (best of %d runs each)\n", k, reps)
	for _, rtt := range rtts {
		merged := clientcmdapi.NewConfig()
		var names []string
		for _, m := range members {
			cl := m.cluster.DeepCopy()
			if rtt > 0 {
				u, err := url.Parse(cl.Server)
				if err != nil {
					return err
				}
				addr, stop, err := delayProxy(u.Host, rtt/2)
				if err != nil {
					return err
				}
				defer stop()
				u.Host = addr
				cl.Server = u.String()
			}
			merged.Clusters[m.name], merged.AuthInfos[m.name] = cl, m.user
			merged.Contexts[m.name] = &clientcmdapi.Context{Cluster: m.name, AuthInfo: m.name}
			names = append(names, m.name)
		}
		kc := filepath.Join(os.TempDir(), fmt.Sprintf("drydock-bench-fleet-%d.kubeconfig", os.Getpid()))
		if err := clientcmd.WriteToFile(*merged, kc); err != nil {
			return err
		}
		defer os.Remove(kc)
		base := []string{drydock, "preflight", "--kubeconfig", kc, "--target", "v1.38", "--fail-on", "never", "-o", "json"}
		alone := map[string]time.Duration{}
		type run struct{ wall, own, clusters time.Duration }
		var fleet []run
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
			w, own, others, err := measureCPU(pids, append(slices.Clone(base), "--contexts", strings.Join(names, ","), "--parallel", fmt.Sprint(k))...)
			if err != nil {
				return err
			}
			fleet = append(fleet, run{w, own, others})
		}
		var slowest time.Duration
		where := "clusters reached directly (round trip ~0)"
		if rtt > 0 {
			where = fmt.Sprintf("clusters %s away (round trip)", rtt)
		}
		fmt.Printf("%s:\n", where)
		for _, n := range names {
			fmt.Printf("  %-38s %12s\n", "drydock preflight --context "+n, alone[n].Round(10*time.Millisecond))
			slowest = max(slowest, alone[n])
		}
		best := slices.MinFunc(fleet, func(a, b run) int { return int(a.wall - b.wall) })
		f := best.wall
		fmt.Printf("  %-38s %12s\n", fmt.Sprintf("drydock preflight --contexts (all %d)", k), f.Round(10*time.Millisecond))
		fmt.Printf("  ratio fleet/slowest alone: wall %.2f (target ≤ 1.5: %s)\n", f.Seconds()/slowest.Seconds(), verdict(f.Seconds() <= 1.5*slowest.Seconds()))
		// The fleet cannot finish before this machine's cores have done the work it causes: drydock's
		// own, and the five clusters' (which a real fleet does on its own machines).
		floor := (best.own + best.clusters) / time.Duration(runtime.NumCPU())
		fmt.Printf("  CPU during the fleet run: drydock %s, the %d clusters %s; on %d cores no less than %s of wall time (fleet/that: %.2f)\n",
			best.own.Round(10*time.Millisecond), k, best.clusters.Round(10*time.Millisecond), runtime.NumCPU(), floor.Round(10*time.Millisecond), f.Seconds()/floor.Seconds())
	}
	return nil
}

// delayProxy forwards each connection made to the address it returns to addr, holding every chunk
// of bytes for oneWay in each direction, in order. stop closes the listener (connections end with
// their clients).
func delayProxy(addr string, oneWay time.Duration) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("tcp", addr)
				if err != nil {
					_ = c.Close()
					return
				}
				done := make(chan struct{})
				go func() { delayCopy(u, c, oneWay); close(done) }()
				delayCopy(c, u, oneWay)
				<-done
				_, _ = c.Close(), u.Close()
			}()
		}
	}()
	return ln.Addr().String(), func() { _ = ln.Close() }, nil
}

// delayCopy copies src to dst, each chunk written oneWay after it was read, then half-closes dst.
func delayCopy(dst, src net.Conn, oneWay time.Duration) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				chunks <- chunk{time.Now().Add(oneWay), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			_ = src.Close() // ends the reader
			for range chunks {
			}
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
