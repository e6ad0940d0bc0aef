package runbook

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

const notifySteps = "  steps:\n    - {name: a, type: fake}\n"

// TestNotifyURLByReference: a webhook URL written in the runbook is refused, at its line and
// column, naming the field and the forms that refer to it, and the problem does not quote the URL;
// each reference form decodes, and a Secret's key adds get on that Secret to the run's access.
func TestNotifyURLByReference(t *testing.T) {
	const secret = "T0000/B0000/XXXXsecretXXXX"
	for _, tc := range []struct {
		name, notify string
		want         []string // in the problems; none: valid
	}{
		{"literal URL", "  notify:\n    - url: https://hooks.slack.com/services/" + secret + "\n      format: slack\n",
			[]string{"x.yaml:7:12: spec.notify[0].url: the webhook URL is a credential written in the runbook, which is copied into the run's journal",
				"{env: SLACK_WEBHOOK}", "{file: /run/secrets/webhook}", "{secretKeyRef: {namespace: drydock, name: webhooks, key: slack}}", "<redacted>"}},
		{"literal URL, flow style", "  notify: [{url: \"https://hooks.slack.com/services/" + secret + "\", on: [failed]}]\n",
			[]string{"x.yaml:6:18: spec.notify[0].url: the webhook URL is a credential"}},
		{"two references at once", "  notify:\n    - url: {env: HOOK, file: /x}\n", []string{"x.yaml:7:12: spec.notify[0].url"}},
		{"unknown reference", "  notify:\n    - url: {vault: x}\n", []string{`unknown field`, "allowed here: env, file, secretKeyRef"}},
		{"Secret key without its key", "  notify:\n    - url: {secretKeyRef: {namespace: d, name: n}}\n", []string{`missing required field "key"`}},
		{"env", "  notify:\n    - url: {env: SLACK_WEBHOOK}\n", nil},
		{"file", "  notify:\n    - url: {file: /run/secrets/hook}\n", nil},
		{"Secret key", "  notify:\n    - url: {secretKeyRef: {namespace: drydock, name: hooks, key: slack}}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb, err := Parse("x.yaml", []byte(header+tc.notify+notifySteps), testRegistry)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", rb.Spec.Notify)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the problem quotes the credential:\n%v", err)
			}
		})
	}

	rb, err := Parse("x.yaml", []byte(header+"  notify:\n    - url: {secretKeyRef: {namespace: drydock, name: hooks, key: slack}}\n"+notifySteps), testRegistry)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, a := range rb.Access() {
		found = found || a.String() == "get secrets hooks in namespace drydock"
	}
	if !found {
		t.Errorf("the run's access lacks get on the Secret: %v", rb.Access())
	}
}

// TestSecretRefResolve: each reference form reads its value; a missing one says which reference
// and how to fix it, never a value.
func TestSecretRefResolve(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(file, []byte("https://hooks.example/file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "drydock", Name: "hooks"},
		Data: map[string][]byte{"slack": []byte("https://hooks.example/secret")}})
	env := map[string]string{"HOOK": "https://hooks.example/env"}
	for _, tc := range []struct {
		name string
		ref  SecretRef
		want string // the value, or in the error
		err  bool
	}{
		{"env", SecretRef{Env: "HOOK"}, "https://hooks.example/env", false},
		{"env unset", SecretRef{Env: "NOPE"}, "read env NOPE: the environment variable is not set (or empty): export it", true},
		{"file", SecretRef{File: file}, "https://hooks.example/file", false},
		{"file missing", SecretRef{File: "/nonexistent/hook"}, "read file /nonexistent/hook:", true},
		{"Secret", SecretRef{SecretKeyRef: &SecretKeySelector{Namespace: "drydock", Name: "hooks", Key: "slack"}}, "https://hooks.example/secret", false},
		{"Secret missing", SecretRef{SecretKeyRef: &SecretKeySelector{Namespace: "drydock", Name: "nope", Key: "slack"}}, "read Secret drydock/nope key slack: no such Secret", true},
		{"key missing", SecretRef{SecretKeyRef: &SecretKeySelector{Namespace: "drydock", Name: "hooks", Key: "teams"}}, `the Secret has no key "teams"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.ref.Resolve(ctx, client, func(k string) string { return env[k] })
			switch {
			case tc.err && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			case !tc.err && (err != nil || v != tc.want):
				t.Errorf("%q, %v; want %q", v, err, tc.want)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]string{
		"env:PROM_TOKEN":               "env PROM_TOKEN",
		"secret:monitoring/prom/token": "Secret monitoring/prom key token",
		"env:":                         "",
		"vault:x":                      "",
		"secret:monitoring/prom":       "",
		"secret:Monitoring/prom/t":     "",
	} {
		r, err := ParseRef(in)
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "env:NAME") {
				t.Errorf("%s: %v, want a refusal with the forms", in, err)
			}
			continue
		}
		if err != nil || r.String() != want {
			t.Errorf("%s: %v %v, want %s", in, r, err, want)
		}
	}
}
