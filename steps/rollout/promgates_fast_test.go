package rollout

import (
	"context"
	"encoding/pem"
	"fmt"
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
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/drydock-dev/drydock/runbook"
)

func TestHealthValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		h    Health
		want []string // fields with an error
	}{
		{"none", Health{}, nil},
		{"good", Health{
			Prometheus:   &PrometheusGates{URL: "http://prom:9090", Queries: []PromQuery{{Name: "errors", Expr: "x", Max: ptr.To(0.01)}}},
			Alertmanager: &AlertmanagerGate{URL: "https://am", Matchers: []string{`severity="critical"`, `alertname=~"Kube.*"`, "team=shop"}},
		}, nil},
		{"bad URL", Health{Prometheus: &PrometheusGates{URL: "prom:9090", Queries: []PromQuery{{Name: "e", Expr: "x", Max: ptr.To(1.0)}}}}, []string{"health.prometheus.url"}},
		{"no queries", Health{Prometheus: &PrometheusGates{URL: "http://p"}}, []string{"health.prometheus.queries"}},
		{"query without bounds, name or expr", Health{Prometheus: &PrometheusGates{URL: "http://p", Queries: []PromQuery{{}}}},
			[]string{"health.prometheus.queries[0].name", "health.prometheus.queries[0].expr", "health.prometheus.queries[0]"}},
		{"min above max, twice the name, bad noData", Health{Prometheus: &PrometheusGates{URL: "http://p", Queries: []PromQuery{
			{Name: "a", Expr: "x", Min: ptr.To(2.0), Max: ptr.To(1.0)}, {Name: "a", Expr: "y", Max: ptr.To(1.0), NoData: "ignore"}}}},
			[]string{"health.prometheus.queries[0].min", "health.prometheus.queries[1].name", "health.prometheus.queries[1].noData"}},
		{"bad matcher", Health{Alertmanager: &AlertmanagerGate{URL: "http://am", Matchers: []string{"severity"}}}, []string{"health.alertmanager.matchers[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, e := range tc.h.Validate("health") {
				got = append(got, e.Field)
				if e.Message == "" {
					t.Errorf("%s: no message", e.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("fields %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeProm answers /api/v1/query as Prometheus does, with the value the test sets.
type fakeProm struct {
	mu     sync.Mutex
	result string // the JSON of data.result, "" for no data
	status int
}

func (f *fakeProm) set(result string, status int) {
	f.mu.Lock()
	f.result, f.status = result, status
	f.mu.Unlock()
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.status == http.StatusBadRequest {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`)
		return
	}
	if f.status != 0 && f.status != http.StatusOK {
		w.WriteHeader(f.status)
		return
	}
	res := f.result
	if res == "" {
		res = "[]"
	}
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":%s}}`, res)
}

func vector(v string) string {
	return fmt.Sprintf(`[{"metric":{"service":"shop"},"value":[1700000000,%q]}]`, v)
}

// TestPromGateFor: a query out of bounds trips only once it stayed so for its `for`; back within
// bounds it resets; no data and errors count as out of bounds (no evidence is not health).
func TestPromGateFor(t *testing.T) {
	t.Parallel()
	fp := &fakeProm{}
	srv := httptest.NewServer(fp)
	defer srv.Close()
	p, err := newPromGates(PrometheusGates{URL: srv.URL, Interval: runbook.Duration{Duration: time.Second},
		Queries: []PromQuery{{Name: "error ratio", Expr: "errors", Max: ptr.To(0.05), For: runbook.Duration{Duration: 30 * time.Second}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	step := func(d time.Duration, result string, status int) []string {
		now = now.Add(d)
		fp.set(result, status)
		return p.problems(ctx)
	}
	if got := step(0, vector("0.01"), 0); len(got) != 0 {
		t.Fatalf("within bounds: %v", got)
	}
	if got := step(2*time.Second, vector("0.2"), 0); len(got) != 0 {
		t.Fatalf("out of bounds for 0s of 30s tripped: %v", got)
	}
	if got := step(20*time.Second, vector("0.3"), 0); len(got) != 0 {
		t.Fatalf("out of bounds for 20s of 30s tripped: %v", got)
	}
	got := step(11*time.Second, vector("0.3"), 0)
	if len(got) != 1 || !strings.Contains(got[0], `"error ratio": 0.3 for {service="shop"} is outside max 0.05 for 31s`) {
		t.Fatalf("out of bounds for 31s: %v", got)
	}
	// Shown as a gate: its value, bounds, and not OK (the TUI shows since when).
	if r := p.results(ctx); len(r) != 1 || r[0].Value != "0.3" || r[0].Bounds != "max 0.05" || r[0].OK || r[0].Kind != "prometheus" {
		t.Errorf("gate %+v", r)
	}
	if got := step(2*time.Second, vector("0.01"), 0); len(got) != 0 {
		t.Fatalf("back within bounds: %v", got)
	}
	// Within one interval the last evaluation stands (Prometheus is not asked on every pod event).
	if got := step(100*time.Millisecond, vector("0.9"), 0); len(got) != 0 {
		t.Fatalf("re-evaluated within the interval: %v", got)
	}
	if got := step(31*time.Second, "", 0); len(got) != 0 {
		t.Fatalf("no data just seen tripped before its for: %v", got)
	}
	if got := step(31*time.Second, "", 0); len(got) != 1 || !strings.Contains(got[0], "no data") {
		t.Fatalf("no data for 31s: %v", got)
	}
	if got := step(2*time.Second, "", http.StatusServiceUnavailable); len(got) != 1 || !strings.Contains(got[0], "did not answer") {
		t.Fatalf("Prometheus down after no data (still out for 33s): %v", got)
	}
}

// TestGatesRefuseToStartOnARedGate: a query Prometheus refuses, or one already out of bounds, fails
// the gates before any node moves.
func TestGatesRefuseToStartOnARedGate(t *testing.T) {
	t.Parallel()
	fp := &fakeProm{}
	srv := httptest.NewServer(fp)
	defer srv.Close()
	for _, tc := range []struct {
		name, result string
		status       int
		want         string
	}{
		{"invalid", "", http.StatusBadRequest, "Prometheus refuses the query: 1:5: parse error"},
		{"already failing", vector("0.5"), 0, "before any node moved: Prometheus gate \"errors\": 0.5 for {service=\"shop\"} is outside max 0.05"},
	} {
		fp.set(tc.result, tc.status)
		// Its `for` does not excuse a gate already red before the first node moves.
		h := Health{Prometheus: &PrometheusGates{URL: srv.URL, Queries: []PromQuery{{Name: "errors", Expr: "e", Max: ptr.To(0.05), For: runbook.Duration{Duration: time.Hour}}}}}
		_, err := NewGates(context.Background(), &runbook.Env{Kube: fake.NewClientset()}, h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestAlertGateIgnoresAlertsFiringBefore: an alert firing when the step began does not count; one
// that starts firing after does, with its labels.
func TestAlertGateIgnoresAlertsFiringBefore(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	alerts := `[{"fingerprint":"old","labels":{"alertname":"Flapping"},"startsAt":"2026-12-01T10:00:00Z"}]`
	var filters []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		filters = r.URL.Query()["filter"]
		fmt.Fprint(w, alerts)
	}))
	defer srv.Close()
	h := Health{Alertmanager: &AlertmanagerGate{URL: srv.URL, Matchers: []string{`severity="critical"`}}}
	g, err := NewGates(context.Background(), &runbook.Env{Kube: fake.NewClientset()}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if p := g.Problems(context.Background()); len(p) != 0 {
		t.Fatalf("an alert firing before counted: %v", p)
	}
	mu.Lock()
	alerts = `[{"fingerprint":"old","labels":{"alertname":"Flapping"},"startsAt":"2026-12-01T10:00:00Z"},
	{"fingerprint":"new","labels":{"alertname":"ShopErrors","severity":"critical"},"startsAt":"2026-12-01T11:00:00Z"}]`
	mu.Unlock()
	p := g.Problems(context.Background())
	if len(p) != 1 || !strings.Contains(p[0], `alert ShopErrors firing since 11:00:00 (alertname="ShopErrors", severity="critical")`) {
		t.Fatalf("problems %v", p)
	}
	// The alert firing before resolves and fires again: a new firing, which counts.
	mu.Lock()
	alerts = `[{"fingerprint":"old","labels":{"alertname":"Flapping"},"startsAt":"2026-12-01T11:30:00Z"}]`
	mu.Unlock()
	if p := g.Problems(context.Background()); len(p) != 1 || !strings.Contains(p[0], "alert Flapping firing since 11:30:00") {
		t.Fatalf("a re-fired alert: problems %v", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(filters) != 1 || filters[0] != `severity="critical"` {
		t.Errorf("filters sent %v", filters)
	}
}

// gatesStep is a step kind with health gates, to parse runbooks in this package's tests.
type gatesStep struct {
	Health Health `json:"health,omitzero"`
}

func (*gatesStep) Name() string                            { return "gates" }
func (*gatesStep) Run(context.Context, *runbook.Env) error { return nil }
func (s *gatesStep) ValidateSettings() []runbook.FieldError {
	return s.Health.Validate("health")
}

var gatesRegistry = runbook.Registry{{Name: "gates", Phase: runbook.PhaseAny, New: func() runbook.Step { return &gatesStep{} }}}

func parseGates(health string) (*runbook.Runbook, error) {
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.2\n  steps:\n" +
		"    - name: soak\n      type: gates\n      with:\n        health:\n" + health
	return runbook.Parse("gates.yaml", []byte(text), gatesRegistry)
}

// TestGateHTTPRefusesInlineSecrets: a gate's http setting is prometheus/common's, by its YAML
// names; every credential written in it (a bearer token, a password, credentials, a client key, an
// OAuth2 client secret, a header secret, a password in a URL) is refused at its line, with the
// field and the reference that replaces it, and the problem does not quote it; a *_ref that is not
// one, an unknown field and what prometheus/common itself refuses are placed too.
func TestGateHTTPRefusesInlineSecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-t0ken"
	prom := func(http string) string {
		return "          prometheus:\n            url: https://prom.example:9090\n            queries: [{name: up, expr: up, min: 1}]\n            http:\n" + http
	}
	for _, tc := range []struct {
		name, health string
		want         []string // in the problems; none: valid
	}{
		{"bearer_token", prom("              bearer_token: " + secret + "\n"),
			[]string{"gates.yaml:15:29: spec.steps[0].with.health.prometheus.http.bearer_token: a credential written in the runbook", "authorization: {credentials_file: /path/to/token} or {credentials_ref: env:PROM_TOKEN}"}},
		{"basic_auth password", prom("              basic_auth: {username: drydock, password: " + secret + "}\n"),
			[]string{"prometheus.http.basic_auth.password: a credential", "use password_file: /path/to/it, or password_ref: env:NAME"}},
		{"authorization credentials", prom("              authorization:\n                credentials: " + secret + "\n"),
			[]string{"gates.yaml:16:30: spec.steps[0].with.health.prometheus.http.authorization.credentials", "credentials_file", "<redacted>"}},
		{"client key", prom("              tls_config: {cert_file: /c.pem, key: " + secret + "}\n"), []string{"http.tls_config.key: a credential", "key_file"}},
		{"oauth2 client secret", prom("              oauth2: {client_id: d, client_secret: " + secret + ", token_url: https://sso.example/token}\n"),
			[]string{"http.oauth2.client_secret: a credential", "client_secret_file"}},
		{"header secret", prom("              http_headers: {X-Token: {secrets: [" + secret + "]}}\n"), []string{"http.http_headers.X-Token.secrets: a credential", "{files: [/path/to/value]}"}},
		{"password in the URL", "          alertmanager: {url: \"https://drydock:" + secret + "@am.example\"}\n", []string{"alertmanager.url: a URL with a password", "basic_auth"}},
		{"alertmanager bearer token", "          alertmanager: {url: https://am.example, http: {bearer_token: " + secret + "}}\n", []string{"alertmanager.http.bearer_token: a credential"}},
		{"not a reference", prom("              authorization: {credentials_ref: vault:prom}\n"),
			[]string{`http.authorization.credentials_ref: "vault:prom" is not a reference: write env:NAME`, "secret:NAMESPACE/NAME/KEY"}},
		{"unknown field", prom("              bearer_tokn_file: /t\n"), []string{"gates.yaml:15:15:", "unknown field", `did you mean "bearer_token_file"?`}},
		{"prometheus/common's own rule", prom("              basic_auth: {username: d, password_file: /p}\n              authorization: {credentials_file: /t}\n"),
			[]string{"gates.yaml:15:15: spec.steps[0].with.health.prometheus.http: at most one of basic_auth, oauth2 & authorization must be configured"}},
		{"by reference", prom("              authorization: {credentials_ref: env:PROM_TOKEN}\n              tls_config: {ca_file: /ca.pem, cert_file: /c.pem, key_ref: secret:monitoring/drydock-client/tls.key}\n              http_headers: {X-Scope-OrgID: {values: [shop]}, X-Token: {files: [/t]}}\n              proxy_url: http://proxy.example:3128\n"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rb, err := parseGates(tc.health)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				cfg := rb.Spec.Steps[0].Step.(*gatesStep).Health.Prometheus.HTTP.Config()
				if cfg.Authorization == nil || cfg.Authorization.CredentialsRef != "env:PROM_TOKEN" || cfg.HTTPHeaders.Headers["X-Scope-OrgID"].Values[0] != "shop" ||
					!cfg.FollowRedirects || !cfg.EnableHTTP2 || cfg.ProxyURL.String() != "http://proxy.example:3128" {
					t.Errorf("decoded %+v", cfg)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
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
}

// TestGateCredentialAccess: a credential in a Secret (secret:NAMESPACE/NAME/KEY) adds get on that
// Secret to what the run asks for before its first change.
func TestGateCredentialAccess(t *testing.T) {
	t.Parallel()
	rb, err := parseGates("          prometheus: {url: https://p, queries: [{name: up, expr: up, min: 1}], http: {authorization: {credentials_ref: secret:monitoring/prom-token/token}}}\n" +
		"          alertmanager: {url: https://am, http: {basic_auth: {username: d, password_ref: env:AM_PASSWORD}}}\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range rb.Access() {
		if a.Resource == "secrets" {
			got = append(got, a.String())
		}
	}
	if strings.Join(got, ",") != "get secrets prom-token in namespace monitoring" {
		t.Errorf("Secrets the run asks for: %v", got)
	}
}

// guarded is Prometheus and Alertmanager behind TLS (a test CA) that want a bearer token and a
// tenant header: the fast twin of the cluster test with the real ones.
func guarded(t *testing.T, token string) (url, caFile string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Scope-OrgID") != "shop" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/api/v2/alerts" {
			fmt.Fprint(w, "[]")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"1"]}]}}`)
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, caFile
}

// TestGateHTTPReachesGuardedMonitoring: without the CA the gates fail on the unknown authority,
// without the token on the 401, each saying which setting fixes it; with the CA, a token by
// reference (env, file, Secret) and the tenant header, both gates pass.
func TestGateHTTPReachesGuardedMonitoring(t *testing.T) {
	const token = "guarded-t0ken"
	u, ca := guarded(t, token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRYDOCK_TEST_PROM_TOKEN", token)
	kube := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "prom"}, Data: map[string][]byte{"token": []byte(token)}})
	tenant := "http_headers: {X-Scope-OrgID: {values: [shop]}}"
	for _, tc := range []struct {
		name, http string
		want       string // in the error; "" for gates that pass
	}{
		{"no CA", "{}", "Prometheus " + u + ": TLS: its certificate is signed by an unknown authority: give that CA in the gate's http.tls_config.ca_file"},
		{"no token", fmt.Sprintf("{tls_config: {ca_file: %s}, %s}", ca, tenant), "Prometheus " + u + " answered 401 Unauthorized: give drydock its credentials in the gate's http setting"},
		{"no tenant", fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_file: %s}}", ca, tokenFile), "answered 401 Unauthorized"},
		{"unset variable", fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_ref: env:DRYDOCK_TEST_UNSET}, %s}", ca, tenant), "read env DRYDOCK_TEST_UNSET: the environment variable is not set"},
		{"token file", fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_file: %s}, %s}", ca, tokenFile, tenant), ""},
		{"token from env", fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_ref: env:DRYDOCK_TEST_PROM_TOKEN}, %s}", ca, tenant), ""},
		{"token from a Secret", fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_ref: secret:monitoring/prom/token}, %s}", ca, tenant), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb, err := parseGates(fmt.Sprintf("          prometheus: {url: %s, queries: [{name: up, expr: up, min: 1}], http: %s}\n          alertmanager: {url: %s, http: %s}\n", u, tc.http, u, tc.http))
			if err != nil {
				t.Fatal(err)
			}
			h := rb.Spec.Steps[0].Step.(*gatesStep).Health
			h.SkipServices = true
			g, err := NewGates(context.Background(), &runbook.Env{Kube: kube}, h)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer g.Stop()
				if p := g.Problems(context.Background()); len(p) != 0 {
					t.Fatalf("problems %v", p)
				}
				return
			}
			if err == nil {
				g.Stop()
				t.Fatal("the gates passed")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "health gates: ") {
				t.Fatalf("%v\nwant %q", err, tc.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
	// Alertmanager, on its own, says the same.
	a := &alertGate{cfg: AlertmanagerGate{URL: u}}
	a.client, _ = httpClient(nil, nil)
	if _, err := a.firing(context.Background()); err == nil || !strings.Contains(err.Error(), "Alertmanager "+u+": TLS: its certificate is signed by an unknown authority") {
		t.Errorf("alertmanager without the CA: %v", err)
	}
}
