package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// TestGatesReachGuardedMonitoring: the real Prometheus and Alertmanager, each behind TLS (a CA of
// the test's own), a bearer token and a tenant header, as production monitoring is. A health gate
// without the CA stops before anything moves on the unknown authority, one without the token on
// the 401, each naming the http setting that fixes it; with prometheus/common's http setting (the
// CA file, the token from drydock's environment for Prometheus and from a Secret for Alertmanager,
// the tenant header) the gate passes its soak.
func TestGatesReachGuardedMonitoring(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	const token, tenant = "guarded-monitoring-t0ken", "shop"
	m, err := cluster.StartMonitoring(ctx, simcluster.MonitoringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	guard := func(upstream string) *simcluster.Guard {
		g, err := simcluster.StartGuard(upstream, simcluster.GuardOptions{Token: token, Header: "X-Scope-OrgID", Value: tenant})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Stop)
		return g
	}
	prom, am := guard(m.PrometheusURL), guard(m.AlertmanagerURL)
	t.Setenv("DRYDOCK_TEST_PROM_TOKEN", token)
	namespace(t, "guarded-monitoring")
	if _, err := cluster.Client.CoreV1().Secrets("guarded-monitoring").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "guarded-monitoring", Name: "alertmanager"}, Data: map[string][]byte{"token": []byte(token)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	headers := fmt.Sprintf("http_headers: {X-Scope-OrgID: {values: [%s]}}", tenant)
	promHTTP := fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_ref: env:DRYDOCK_TEST_PROM_TOKEN}, %s}", prom.CAFile, headers)
	amHTTP := fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_ref: secret:guarded-monitoring/alertmanager/token}, %s}", am.CAFile, headers)
	gates := func(promHTTP, amHTTP string) string {
		return fmt.Sprintf("{namespaces: [guarded-monitoring], prometheus: {url: %s, interval: 1s, queries: [{name: one, expr: vector(1), min: 1}], http: %s}, alertmanager: {url: %s, matchers: ['team=\"shop\"'], http: %s}}",
			prom.URL, promHTTP, am.URL, amHTTP)
	}
	for _, tc := range []struct {
		name, health string
		want         []string // in the error; none for a gate that passes
	}{
		{"no CA", gates("{}", amHTTP), []string{"health gates: before any node moved: Prometheus gate \"one\": Prometheus " + prom.URL +
			": TLS: its certificate is signed by an unknown authority: give that CA in the gate's http.tls_config.ca_file"}},
		{"no token for Prometheus", gates(fmt.Sprintf("{tls_config: {ca_file: %s}, %s}", prom.CAFile, headers), amHTTP),
			[]string{"Prometheus " + prom.URL + " answered 401 Unauthorized: give drydock its credentials in the gate's http setting"}},
		{"no tenant for Alertmanager", gates(promHTTP, fmt.Sprintf("{tls_config: {ca_file: %s}, authorization: {credentials_ref: secret:guarded-monitoring/alertmanager/token}}", am.CAFile)),
			[]string{"health gates: Alertmanager " + am.URL + " answered 401 Unauthorized"}},
		{"credentials by reference", gates(promHTTP, amHTTP), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := engine(t, runbook.AlwaysContinue)
			rb := parse(t, "v1.37.1", fmt.Sprintf("    - name: soak\n      type: health-gate\n      with: {soak: 3s, health: %s}\n", tc.health))
			runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			st, err := e.Start(runCtx, rb)
			if tc.want == nil {
				if err != nil || st.Step("soak").Status != runbook.StatusDone {
					t.Fatalf("%v\n%s", err, rec.Text())
				}
				if !strings.Contains(rec.Text(), "one 1 (min 1) ok since") || !strings.Contains(rec.Text(), "alerts 0 new firing ok since") {
					t.Errorf("the gates' values were not reported:\n%s", rec.Text())
				}
				return
			}
			if err == nil || !errors.Is(err, runbook.ErrBlocked) || exitcode.For(err) != exitcode.Blocked {
				t.Fatalf("exit %d: %v; want the run blocked before anything moved\n%s", exitcode.For(err), err, rec.Text())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error()+rec.Text(), token) {
				t.Error("the token is in the error or the events")
			}
		})
	}
}
