package simcluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// TestDownStopsRestartedAPIServers: `simcluster down` (Attach, then Stop, from a process that
// started nothing) stops every process the cluster ever ran: the apiserver, controller-manager
// and scheduler a test restarted with RestartAPIServer, and the apiserver of a restart still under
// way when the cluster goes down (its start is refused, not left running on a deleted cluster).
// Each pid is looked for in /proc afterwards.
func TestDownStopsRestartedAPIServers(t *testing.T) {
	simcluster.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	before := c.ComponentPIDs()
	if err := c.RestartAPIServer(ctx, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	after := c.ComponentPIDs()
	if len(after) == 0 || fmt.Sprint(after) == fmt.Sprint(before) {
		t.Fatalf("the restart changed no pid (%v, then %v): the check below would prove nothing", before, after)
	}

	// Another restart, stopped in the middle by `down`.
	apiserverPID := pidOf(t, c, "kube-apiserver")
	restarted := make(chan error, 1)
	go func() { restarted <- c.RestartAPIServer(ctx, 3*time.Second) }()
	for alive(apiserverPID) {
		if ctx.Err() != nil {
			t.Fatal("the apiserver was not stopped for its restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	down, err := simcluster.Attach(c.Name, c.WorkDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Stop(); err != nil {
		t.Fatalf("down: %v", err)
	}
	t.Logf("the restart under way when the cluster went down: %v", <-restarted)
	time.Sleep(500 * time.Millisecond) // what a late start left would show by now
	var left []string
	for _, pid := range append(before, after...) {
		if alive(pid) {
			left = append(left, strconv.Itoa(pid))
		}
	}
	if procs := processList(c.WorkDir); len(procs) > 0 || len(left) > 0 {
		t.Fatalf("processes left after down: pids %v; %v", left, procs)
	}
}

// TestSecondAPIServerStopsWithCluster: a second apiserver (StartAPIServer) on the same etcd
// answers at its own address, survives a restart from the previous minor's binary, and Stop stops
// it with the rest.
func TestSecondAPIServerStopsWithCluster(t *testing.T) {
	simcluster.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	prev, err := simcluster.PrevBinDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.StartAPIServer(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	version := func() string {
		t.Helper()
		cfg := rest.CopyConfig(c.Config)
		cfg.Host = b.URL
		v, err := kubernetes.NewForConfigOrDie(cfg).Discovery().ServerVersion()
		if err != nil {
			t.Fatalf("second apiserver at %s: %v", b.URL, err)
		}
		return v.GitVersion
	}
	if b.URL == c.Config.Host || version() != simcluster.KubernetesVersion {
		t.Fatalf("second apiserver at %s (the first at %s) answers %s", b.URL, c.Config.Host, version())
	}
	if err := b.Restart(ctx, prev); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != simcluster.PreviousVersion {
		t.Fatalf("restarted from the previous minor, it answers %s", v)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if procs := processList(c.WorkDir); len(procs) > 0 {
		t.Fatalf("processes left after Stop: %v", procs)
	}
}

// pidOf reads the pid file kwokctl (or a restart) wrote for a component.
func pidOf(t *testing.T, c *simcluster.Cluster, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.WorkDir, "kwok", "clusters", c.Name, "pids", name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// alive: /proc has the pid (a zombie not yet reaped counts).
func alive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}
