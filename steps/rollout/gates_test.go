package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// shopService is the test service: it counts requests by status code as a real service's metrics
// would, ten a tenth of a second, half of them failing while failing is set.
type shopService struct {
	addr    string
	failing atomic.Bool
}

func startShop(t *testing.T) *shopService {
	t.Helper()
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shop_requests_total", Help: "requests served, by code"}, []string{"code"})
	reg.MustRegister(reqs)
	reqs.WithLabelValues("500").Add(0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s := &shopService{addr: ln.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				bad := 0.0
				if s.failing.Load() {
					bad = 5
				}
				reqs.WithLabelValues("200").Add(10 - bad)
				reqs.WithLabelValues("500").Add(bad)
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = srv.Close() })
	return s
}

const errorRatio = `sum(rate(shop_requests_total{code="500"}[5s])) / sum(rate(shop_requests_total[5s]))`

// monitoring starts a real Prometheus (scraping the apiserver and the shop every second, with an
// alert on its error ratio) and a real Alertmanager, and waits until the shop's ratio has data.
func monitoring(t *testing.T, shop *shopService) *simcluster.Monitoring {
	t.Helper()
	ctx := context.Background()
	m, err := cluster.StartMonitoring(ctx, simcluster.MonitoringOptions{
		Targets: []string{shop.addr},
		Rules: fmt.Sprintf(`groups:
- name: shop
  rules:
  - alert: ShopErrors
    expr: %s > 0.1
    labels: {severity: critical, team: shop}
`, errorRatio),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	deadline := time.Now().Add(time.Minute)
	for {
		body, err := get(m.PrometheusURL + "/api/v1/query?query=" + url.QueryEscape(errorRatio))
		if err == nil && strings.Contains(body, `"value"`) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has no error ratio for the shop after a minute: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSoakOnEvidence: a real Prometheus and Alertmanager gate a canary's soak. A healthy canary
// passes with each gate's value reported; when the shop starts failing mid-soak, the PromQL gate
// (and, on its own, the Alertmanager gate) stops the canary long before its soak would end, and
// the canary is rolled back.
func TestSoakOnEvidence(t *testing.T) {
	simcluster.Need(t)
	shop := startShop(t)
	m := monitoring(t, shop)
	prom := fmt.Sprintf(`{url: %q, interval: 1s, queries: [{name: error ratio, expr: %q, max: 0.05, for: 2s}]}`, m.PrometheusURL, errorRatio)
	alerts := fmt.Sprintf(`{url: %q, matchers: ['team="shop"']}`, m.AlertmanagerURL)

	for _, tc := range []struct {
		name, health, soak string
		fail               bool   // the shop starts failing once the soak began
		want               string // in the error; "" for a canary that passes
	}{
		{"healthy", fmt.Sprintf("{prometheus: %s, alertmanager: %s}", prom, alerts), "6s", false, ""},
		{"promql", fmt.Sprintf("{prometheus: %s}", prom), "2m", true, `Prometheus gate "error ratio": `},
		{"alert", fmt.Sprintf("{alertmanager: %s}", alerts), "2m", true, "Alertmanager gate: alert ShopErrors firing since"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shop.failing.Store(false)
			defer shop.failing.Store(false)
			quiet(t, m) // the alert of the case before has resolved
			names := nodes(t, "soak-"+tc.name, 1, nil)
			e, rec := engine(t, runbook.AlwaysContinue)
			rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        node: %s
        action: {exec: %s}
        soak: %s
        health: %s
`, names[0], upgradeAction(t), tc.soak, tc.health))
			type result struct {
				st  *runbook.RunState
				err error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				st, err := e.Start(context.Background(), rb)
				done <- result{st, err}
			}()
			if tc.fail {
				for !strings.Contains(rec.Text(), "soak: watching health") {
					select {
					case r := <-done:
						t.Fatalf("ended before its soak: %v\n%s", r.err, rec.Text())
					case <-time.After(100 * time.Millisecond):
					}
				}
				shop.failing.Store(true)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(3 * time.Minute):
				t.Fatalf("the canary did not end within 3 minutes:\n%s", rec.Text())
			}
			if tc.want == "" {
				if r.err != nil || r.st.Step("canary").Status != runbook.StatusDone {
					t.Fatalf("%v\n%s", r.err, rec.Text())
				}
				// Each gate's value and verdict went out as the soak went (the TUI shows them), and the
				// soak's end says every gate stayed green, with the values.
				if !strings.Contains(rec.Text(), "gates: pods 0 unhealthy ok since") || !strings.Contains(rec.Text(), "error ratio 0 (max 0.05) ok since") ||
					!strings.Contains(rec.Text(), "alerts 0 new firing ok since") || !strings.Contains(rec.Text(), "soak: every gate green for 6s: ") ||
					!strings.Contains(rec.Text(), "error ratio=0") {
					t.Errorf("the soak does not report its gates' values:\n%s", rec.Text())
				}
				return
			}
			if exitcode.For(r.err) != exitcode.Aborted || !errors.Is(r.err, runbook.ErrRolledBack) || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("exit %d: %v; want a rolled-back canary with %q\n%s", exitcode.For(r.err), r.err, tc.want, rec.Text())
			}
			if took := time.Since(start); took > time.Minute {
				t.Errorf("stopped after %s: the 2m soak ran on a timer, not on evidence", took)
			}
			if node(t, names[0]).Spec.Unschedulable {
				t.Error("the failed canary must be uncordoned")
			}
		})
	}
}

// quiet waits until Alertmanager has no active shop alert and the shop's error ratio is back under
// the gate's bound.
func quiet(t *testing.T, m *simcluster.Monitoring) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		a, aerr := get(m.AlertmanagerURL + "/api/v2/alerts?active=true&filter=" + url.QueryEscape(`team="shop"`))
		r, rerr := get(m.PrometheusURL + "/api/v1/query?query=" + url.QueryEscape(errorRatio+" > 0.05"))
		if aerr == nil && rerr == nil && strings.TrimSpace(a) == "[]" && strings.Contains(r, `"result":[]`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shop is not quiet after a minute: alerts %s %v, ratio %s %v", a, aerr, r, rerr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func get(u string) (string, error) {
	resp, err := http.Get(u) //nolint:noctx // a test's local server
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
