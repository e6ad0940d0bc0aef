package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
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
	// The runbook refers to its webhooks' URLs (credentials): drydock's environment holds them.
	t.Setenv("DRYDOCK_TEST_HOOK_CE", srv.URL+"/ce")
	t.Setenv("DRYDOCK_TEST_HOOK_SLACK", srv.URL+"/slack")
	patchRunbook(t, rb, "  notify:\n    - {url: {env: DRYDOCK_TEST_HOOK_CE}}\n    - {url: {env: DRYDOCK_TEST_HOOK_SLACK}, format: slack, on: [paused, blocked]}\n")
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

// TestNotifySecretsStayOutOfJournal: a webhook URL written in the runbook is refused (exit 2)
// before anything runs, without quoting it; a runbook that refers to its webhooks (an environment
// variable, a Secret's key, a file) runs, each webhook is called at its real URL, and no planted
// secret is in the local journal, its ConfigMap copy in the cluster or the output. A reference that
// cannot be read is a warning naming it, never the run's failure.
func TestNotifySecretsStayOutOfJournal(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	defer srv.Close()
	called := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(paths, " ")
	}
	secrets := []string{"T0ENV/B0/planted-env-9f3c2a", "T0SEC/B0/planted-secret-7d1e4b", "T0FILE/B0/planted-file-2c8a6f"}
	p := newProc(t)

	literal := writeRunbook(t, "literal-hook", "    - {name: hi, type: exec, with: {command: [echo, hi]}}\n")
	patchRunbook(t, literal, fmt.Sprintf("  notify:\n    - url: %s/services/%s\n      format: slack\n", srv.URL, secrets[0]))
	out, code := p.run("run", literal, "--yes")
	if code != 2 || !strings.Contains(out, "spec.notify[0].url: the webhook URL is a credential written in the runbook") || !strings.Contains(out, "{env: SLACK_WEBHOOK}") {
		t.Fatalf("a runbook with its webhook's URL: exit %d, want 2 naming the field and the fix:\n%s", code, out)
	}
	if strings.Contains(out, secrets[0]) || called() != "" {
		t.Fatalf("the refusal quotes the URL or a webhook was called (%q):\n%s", called(), out)
	}

	ns := "notify-secrets"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hooks"},
		Data: map[string][]byte{"ce": []byte(srv.URL + "/services/" + secrets[1])}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hookFile := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(hookFile, []byte(srv.URL+"/services/"+secrets[2]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRYDOCK_TEST_PLANTED_HOOK", srv.URL+"/services/"+secrets[0])
	rb := writeRunbook(t, "referred-hooks", "    - {name: hi, type: exec, with: {command: [echo, hi]}}\n")
	patchRunbook(t, rb, fmt.Sprintf("  notify:\n    - {url: {env: DRYDOCK_TEST_PLANTED_HOOK}, format: slack}\n"+
		"    - {url: {secretKeyRef: {namespace: %s, name: hooks, key: ce}}}\n    - {url: {file: %s}}\n    - {url: {env: DRYDOCK_TEST_UNSET_HOOK}}\n", ns, hookFile))
	out, code = p.run("run", rb, "--yes")
	if code != 0 {
		t.Fatalf("run: exit %d, want 0:\n%s", code, out)
	}
	id := runIDRE.FindStringSubmatch(out)[1]
	for _, s := range secrets {
		if !strings.Contains(called(), "/services/"+s) {
			t.Errorf("the webhook at its resolved URL (…/%s) was not called: %s", s, called())
		}
	}
	if !strings.Contains(out, "warning: notify spec.notify[3] (env DRYDOCK_TEST_UNSET_HOOK): read env DRYDOCK_TEST_UNSET_HOOK: the environment variable is not set") {
		t.Errorf("an unreadable reference is not a warning naming it:\n%s", out)
	}
	journal := localJournal(t, p.stateDir)
	if !strings.Contains(journal, "DRYDOCK_TEST_PLANTED_HOOK") || !strings.Contains(journal, id) {
		t.Fatalf("the local journal does not hold the run and its references:\n%.2000s", journal)
	}
	mirror := mirroredJournal(t, id)
	for _, s := range secrets {
		for where, text := range map[string]string{"local journal": journal, "ConfigMap copy": mirror, "output": out} {
			if strings.Contains(text, s) || strings.Contains(text, strings.ReplaceAll(s, "/", `\/`)) {
				t.Errorf("the %s holds the planted secret %q", where, s)
			}
		}
	}
}

// localJournal is every file under a state directory, concatenated.
func localJournal(t *testing.T, dir string) string {
	t.Helper()
	var all bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.String()
}

// mirroredJournal is the run's ConfigMap in the cluster (data and gunzipped binary data), once it
// says the run ended.
func mirroredJournal(t *testing.T, id string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cm, err := cluster.Client.CoreV1().ConfigMaps(runbook.DefaultStateNamespace).Get(context.Background(), runbook.ConfigMapName(id), metav1.GetOptions{})
		var all bytes.Buffer
		if err == nil {
			for k, v := range cm.Data {
				fmt.Fprintf(&all, "%s=%s\n", k, v)
			}
			for k, v := range cm.Annotations {
				fmt.Fprintf(&all, "%s=%s\n", k, v)
			}
			for _, v := range cm.BinaryData {
				if zr, err := gzip.NewReader(bytes.NewReader(v)); err == nil {
					b, _ := io.ReadAll(zr)
					all.Write(b)
				}
			}
			if strings.Contains(all.String(), "succeeded") {
				return all.String()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run's ConfigMap copy does not say it ended after 30s: %v\n%.2000s", err, all.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
