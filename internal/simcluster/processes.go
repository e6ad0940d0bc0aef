package simcluster

// Every process the cluster starts itself (a restarted apiserver, controller-manager or scheduler,
// an upgraded component, a second apiserver) is written down in the work directory, by pid and
// start time, so that Stop — in this process, in `simcluster down`, or the watchdog — stops each
// one, not only those kwokctl's pid files name at the moment. Once Stop began, no process starts
// any more: a restart still under way when the cluster is stopped (a test's cleanup while a fault
// restarts the apiserver) fails instead of leaving an apiserver running on a deleted cluster.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// processesFile lists what the cluster started itself: "PID STARTTIME NAME" a line.
	processesFile = "processes"
	// stoppedFile marks a cluster Stop began on: nothing starts any more.
	stoppedFile = "stopped"
)

// ErrStopped is a component start refused because the cluster is being stopped or was.
var ErrStopped = errors.New("simcluster: the cluster was stopped")

// lockProcesses takes the cluster's lock on its process list (across processes), waiting.
func (c *Cluster) lockProcesses() (func(), error) {
	f, err := os.OpenFile(filepath.Join(c.WorkDir, processesFile+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("simcluster: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("simcluster: lock %s: %w", f.Name(), err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}

// start runs the process again with its argv, environment and directory, detached like kwokctl's
// own, its output appended to its log; its pid goes to its pid file and to the cluster's process
// list. It refuses (ErrStopped) once Stop began.
func (c *Cluster) start(p *process) error {
	unlock, err := c.lockProcesses()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(c.WorkDir, stoppedFile)); err == nil {
		return fmt.Errorf("start %s: %w", p.Name, ErrStopped)
	}
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	cmd.Dir, cmd.Env = p.Cwd, p.Env
	if logf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		cmd.Stdout, cmd.Stderr = logf, logf
		defer logf.Close()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("simcluster: start %s: %w", p.Name, err)
	}
	go func() { _ = cmd.Wait() }() // reap it when it ends
	p.pid = cmd.Process.Pid
	line := fmt.Sprintf("%d %d %s\n", p.pid, startTime(p.pid), p.Name)
	f, err := os.OpenFile(filepath.Join(c.WorkDir, processesFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.WriteString(line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = cmd.Process.Kill() // untracked, it could outlive the cluster
		return fmt.Errorf("simcluster: record %s: %w", p.Name, err)
	}
	if err := os.WriteFile(p.PidFile, []byte(strconv.Itoa(p.pid)), 0o644); err != nil {
		return fmt.Errorf("simcluster: %s: %w", p.Name, err)
	}
	return nil
}

// markStopped makes every later start refuse, waiting for one under way to be written down.
func (c *Cluster) markStopped() {
	unlock, err := c.lockProcesses()
	if err == nil {
		defer unlock()
	}
	_ = os.WriteFile(filepath.Join(c.WorkDir, stoppedFile), nil, 0o644)
}

// tracked returns the pids of the processes the cluster started itself that still run (the same
// process: its start time is the one written down, not a later process given the pid again).
func (c *Cluster) tracked() []int {
	b, err := os.ReadFile(filepath.Join(c.WorkDir, processesFile))
	if err != nil {
		return nil
	}
	var pids []int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		start, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 == nil && err2 == nil && pid > 0 && startTime(pid) == start && !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopTracked ends every process the cluster started itself (SIGTERM, then SIGKILL after 10s)
// and waits until none exists.
func (c *Cluster) stopTracked(ctx context.Context) error {
	pids := c.tracked()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if waitGone(tctx, pids) == nil {
		return nil
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return waitGone(ctx, pids)
}

// startTime is the process's start time (clock ticks after boot, /proc/PID/stat field 22), 0
// when it does not exist.
func startTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // from field 3 (state) on
	if len(f) < 20 {
		return 0
	}
	t, _ := strconv.ParseUint(f[19], 10, 64)
	return t
}

// watchdogStopsTracked is the watchdog's shell for the processes the cluster started itself: it
// marks the cluster stopped, then kills each one still running under its recorded start time.
func (c *Cluster) watchdogStopsTracked() string {
	return fmt.Sprintf(`: > %q
[ -f %q ] && while read -r pid start name; do
  [ "$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f20)" = "$start" ] && kill -9 "$pid"
done < %q
`, filepath.Join(c.WorkDir, stoppedFile), filepath.Join(c.WorkDir, processesFile), filepath.Join(c.WorkDir, processesFile))
}

// APIServer is one more kube-apiserver of the cluster (StartAPIServer): another control-plane
// member on the same etcd with its own address, as each member of a real HA control plane has.
type APIServer struct {
	// URL is its own address, https://127.0.0.1:PORT.
	URL string
	c   *Cluster
	p   *process
}

// StartAPIServer starts another kube-apiserver from binDir (BinDir or PrevBinDir) with the first
// one's flags on the same etcd, listening on a port of its own, and waits until it answers
// /readyz. Stop stops it with the rest of the cluster.
func (c *Cluster) StartAPIServer(ctx context.Context, binDir string) (*APIServer, error) {
	first, err := c.component("kube-apiserver")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.WorkDir, "kwok", "clusters", c.Name)
	n := 2
	for ; ; n++ {
		if _, err := os.Stat(filepath.Join(dir, "pids", fmt.Sprintf("kube-apiserver-%d.pid", n))); err != nil {
			break
		}
	}
	name := fmt.Sprintf("kube-apiserver-%d", n)
	p := &process{Name: name, PidFile: filepath.Join(dir, "pids", name+".pid"), LogFile: filepath.Join(dir, "logs", name+".log"),
		Cwd: first.Cwd, Env: first.Env, Argv: slices.Clone(first.Argv)}
	found := false
	for i, a := range p.Argv {
		if strings.HasPrefix(a, "--secure-port=") {
			p.Argv[i], found = "--secure-port="+strconv.Itoa(ports[0]), true
		}
	}
	if !found {
		return nil, fmt.Errorf("simcluster: the apiserver's flags have no --secure-port: %v", first.Argv)
	}
	a := &APIServer{URL: "https://127.0.0.1:" + strconv.Itoa(ports[0]), c: c, p: p}
	if err := a.Restart(ctx, binDir); err != nil {
		return nil, err
	}
	return a, nil
}

// Stop ends this apiserver (SIGTERM, then SIGKILL), as a crashed member.
func (a *APIServer) Stop(ctx context.Context) error { return a.p.stop(ctx) }

// Restart stops this apiserver if it runs and starts it from binDir's kube-apiserver (an
// upgrade, or the same binary again), then waits until it answers /readyz at its own address.
func (a *APIServer) Restart(ctx context.Context, binDir string) error {
	if a.p.pid > 0 {
		if err := a.p.stop(ctx); err != nil {
			return err
		}
	}
	a.p.Argv[0] = filepath.Join(binDir, "kube-apiserver")
	if _, err := os.Stat(a.p.Argv[0]); err != nil {
		return fmt.Errorf("simcluster: %s: %w", a.p.Name, err)
	}
	if err := a.c.start(a.p); err != nil {
		return err
	}
	return a.c.waitReadyzAt(ctx, a.URL)
}
