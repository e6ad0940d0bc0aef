package rollout

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

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
		Queries: []PromQuery{{Name: "error ratio", Expr: "errors", Max: ptr.To(0.05), For: runbook.Duration{Duration: 30 * time.Second}}}})
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
