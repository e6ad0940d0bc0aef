package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// TestNotifications: a runbook's notify: webhooks and --notify are told how a real run ends —
// paused, succeeded, blocked — as CloudEvents and as Slack text, each to the targets that want
// that outcome; a webhook that is down is a warning and changes no exit code.
func TestNotifications(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string][]string{} // path -> bodies
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	received := func(path string) []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got[path]...)
	}
	outcome := func(body string) string {
		var ev struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal([]byte(body), &ev)
		return strings.TrimPrefix(ev.Type, "dev.drydock.run.")
	}

	rb := writeRunbook(t, "notified", "    - {name: hi, type: exec, pause: after, with: {command: [echo, hi]}}\n")
	// writeRunbook puts steps last; notify: goes in before them.
	patchRunbook(t, rb, fmt.Sprintf("  notify:\n    - {url: %q}\n    - {url: %q, format: slack, on: [paused, blocked]}\n", srv.URL+"/ce", srv.URL+"/slack"))
	p := newProc(t)
	out, code := p.run("run", rb)
	if code != 5 {
		t.Fatalf("run: exit %d, want 5:\n%s", code, out)
	}
	id := runIDRE.FindStringSubmatch(out)[1]
	if ce := received("/ce"); len(ce) != 1 || outcome(ce[0]) != "paused" || !strings.Contains(ce[0], `"subject":"`+id+`"`) {
		t.Fatalf("paused: cloudevents %q", ce)
	}
	if sl := received("/slack"); len(sl) != 1 || !strings.Contains(sl[0], "is waiting for you at a pause point") {
		t.Fatalf("paused: slack %q", sl)
	}
	out, code = p.run("resume", id, "--yes", "--notify", "http://127.0.0.1:1/down")
	if code != 0 || !strings.Contains(out, "warning: notify http://127.0.0.1:1/…") {
		t.Fatalf("resume with a webhook that is down: exit %d, want 0 and a warning:\n%s", code, out)
	}
	if ce := received("/ce"); len(ce) != 2 || outcome(ce[1]) != "succeeded" {
		t.Fatalf("succeeded: cloudevents %q", ce)
	}
	if sl := received("/slack"); len(sl) != 1 {
		t.Errorf("the slack target wants paused and blocked only: %q", sl)
	}
	// Another machine (no local journal) reads the run from its copy in the cluster.
	if out, _ := runPlain(t, "status", id, "--from-cluster", "--state-dir", t.TempDir()); !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Errorf("status --from-cluster:\n%s", out)
	}

	// A drain blocked before anything moved (no run is even created) is told too.
	ns := "notify"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.CreateNode(ctx, "notify-1", simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"suite": ns}}); err != nil {
		t.Fatal(err)
	}
	fullBudget(t, ns, map[string]string{"suite": ns})
	out, code = p.run("drain", "notify-1", "--notify", "slack="+srv.URL+"/drain")
	if code != 3 {
		t.Fatalf("drain: exit %d, want 3:\n%s", code, out)
	}
	if sl := received("/drain"); len(sl) != 1 || !strings.Contains(sl[0], "was blocked before anything moved") || !strings.Contains(sl[0], "minAvailable: 100%") {
		t.Fatalf("blocked drain: slack %q", sl)
	}
}

// patchRunbook inserts spec lines (two-space indented) before a runbook's steps.
func patchRunbook(t *testing.T, path, specLines string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "  steps:\n", specLines+"  steps:\n", 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
