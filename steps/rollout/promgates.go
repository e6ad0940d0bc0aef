package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/runbook"
)

// PrometheusGates are PromQL queries, evaluated through Prometheus's HTTP API, that must stay within
// their bounds between nodes, between groups and through the whole soak.
type PrometheusGates struct {
	// URL of the Prometheus server (its API is URL/api/v1/query).
	URL string `json:"url"`
	// HTTP is how drydock reaches it: a bearer token, basic auth, OAuth2, TLS (a CA, a client
	// certificate), headers (a tenant), a proxy, as Prometheus's own http_config
	// (`{authorization: {credentials_ref: env:PROM_TOKEN}, tls_config: {ca_file: /etc/ca.pem},
	// http_headers: {X-Scope-OrgID: {values: [shop]}}}`). Credentials by *_file or *_ref, never inline.
	HTTP *HTTPConfig `json:"http,omitempty"`
	// Queries are the gates, each with its bounds.
	Queries []PromQuery `json:"queries"`
	// Interval between two evaluations of the queries (default 15s).
	Interval runbook.Duration `json:"interval,omitzero"`
}

// PromQuery is one PromQL gate: red while a series of its result is outside [min, max] for longer
// than `for`.
type PromQuery struct {
	// Name the gate is shown and reported by ("error ratio").
	Name string `json:"name"`
	// Expr is an instant PromQL query ("sum(rate(http_requests_total{code=~\"5..\"}[1m])) / sum(rate(http_requests_total[1m]))").
	Expr string `json:"expr"`
	// Max: the gate is out of bounds while a series is above it.
	Max *float64 `json:"max,omitempty"`
	// Min: the gate is out of bounds while a series is below it.
	Min *float64 `json:"min,omitempty"`
	// For is how long the query must stay out of bounds (or unanswered) before the gate trips
	// (default 0: at once), like an alerting rule's `for`.
	For runbook.Duration `json:"for,omitzero"`
	// NoData says what an empty result means: "fail" (default: no evidence is not health) or "pass".
	NoData string `json:"noData,omitempty"`
}

// AlertmanagerGate: no alert that matches may start firing after the step began (alerts firing
// then, silenced or inhibited do not count).
type AlertmanagerGate struct {
	// URL of Alertmanager (its API is URL/api/v2/alerts).
	URL string `json:"url"`
	// HTTP is how drydock reaches it, as for the Prometheus gates.
	HTTP *HTTPConfig `json:"http,omitempty"`
	// Matchers select the alerts that count, in Alertmanager's syntax (`severity="critical"`,
	// `alertname=~"Kube.*"`); none: every alert.
	Matchers []string `json:"matchers,omitempty"`
}

var matcherRE = regexp.MustCompile(`^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*("([^"\\]|\\.)*"|[^"\s,{}]*)\s*$`)

// Validate checks the gates' settings.
func (h Health) Validate(field string) []runbook.FieldError {
	var errs []runbook.FieldError
	if p := h.Prometheus; p != nil {
		errs = append(errs, checkGateURL(field+".prometheus.url", p.URL)...)
		errs = append(errs, p.HTTP.Check(field+".prometheus.http")...)
		if len(p.Queries) == 0 {
			errs = append(errs, runbook.FieldError{Field: field + ".prometheus.queries", Message: "needs at least one query (name, expr, max or min)"})
		}
		names := map[string]bool{}
		for i, q := range p.Queries {
			f := fmt.Sprintf("%s.prometheus.queries[%d]", field, i)
			switch {
			case strings.TrimSpace(q.Name) == "":
				errs = append(errs, runbook.FieldError{Field: f + ".name", Message: "needs a name (it names the gate in the report)"})
			case names[q.Name]:
				errs = append(errs, runbook.FieldError{Field: f + ".name", Message: fmt.Sprintf("%q is the name of another query", q.Name)})
			}
			names[q.Name] = true
			if strings.TrimSpace(q.Expr) == "" {
				errs = append(errs, runbook.FieldError{Field: f + ".expr", Message: "needs a PromQL expression"})
			}
			if q.Max == nil && q.Min == nil {
				errs = append(errs, runbook.FieldError{Field: f, Message: "needs max or min (or both): the bounds the value must stay within"})
			}
			if q.Max != nil && q.Min != nil && *q.Min > *q.Max {
				errs = append(errs, runbook.FieldError{Field: f + ".min", Message: fmt.Sprintf("min %g is above max %g", *q.Min, *q.Max)})
			}
			if q.NoData != "" && q.NoData != "fail" && q.NoData != "pass" {
				errs = append(errs, runbook.FieldError{Field: f + ".noData", Message: fmt.Sprintf("%q is not fail or pass", q.NoData)})
			}
		}
	}
	if a := h.Alertmanager; a != nil {
		errs = append(errs, checkGateURL(field+".alertmanager.url", a.URL)...)
		errs = append(errs, a.HTTP.Check(field+".alertmanager.http")...)
		for i, m := range a.Matchers {
			if !matcherRE.MatchString(m) {
				errs = append(errs, runbook.FieldError{Field: fmt.Sprintf("%s.alertmanager.matchers[%d]", field, i),
					Message: fmt.Sprintf("%q is not a matcher: write label=\"value\", label!=\"value\", label=~\"regex\" or label!~\"regex\"", m)})
			}
		}
	}
	return errs
}

// promGates evaluates the Prometheus queries, at most once per interval.
type promGates struct {
	cfg PrometheusGates
	api promv1.API
	now func() time.Time

	mu     sync.Mutex
	last   time.Time
	states []queryState
}

// queryState is what one query showed.
type queryState struct {
	value string    // the last value, or why there is none
	why   string    // what is wrong now ("": within bounds)
	bad   time.Time // since when it has been out of bounds or unanswered (zero: within bounds)
}

// newPromGates makes the gates' client from their http setting; kube reads a secret:… reference.
func newPromGates(cfg PrometheusGates, kube kubernetes.Interface) (*promGates, error) {
	hc, err := httpClient(cfg.HTTP, kube)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: http: %w", cfg.URL, err)
	}
	client, err := promapi.NewClient(promapi.Config{Address: cfg.URL, RoundTripper: hc.Transport})
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", cfg.URL, err)
	}
	return &promGates{cfg: cfg, api: promv1.NewAPI(client), now: time.Now, states: make([]queryState, len(cfg.Queries))}, nil
}

func (p *promGates) interval() time.Duration {
	if p.cfg.Interval.IsZero() {
		return 15 * time.Second
	}
	return p.cfg.Interval.Duration
}

// evaluate runs every query and returns, for each, what is wrong with it now ("" when within bounds).
func (p *promGates) evaluate(ctx context.Context) []string {
	wrong := make([]string, len(p.cfg.Queries))
	for i, q := range p.cfg.Queries {
		value, why := p.query(ctx, q)
		p.states[i].value = value
		if why != "" {
			wrong[i] = why
		}
	}
	return wrong
}

// query evaluates one query: its value, and why it is out of bounds ("" when it is not).
func (p *promGates) query(ctx context.Context, q PromQuery) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, _, err := p.api.Query(ctx, q.Expr, p.now())
	if err != nil {
		var perr *promv1.Error
		if errors.As(err, &perr) && perr.Type == promv1.ErrBadData {
			return "invalid query", fmt.Sprintf("Prometheus refuses the query: %s (fix the expr)", perr.Msg)
		}
		return "no answer", explain("Prometheus", p.cfg.URL, err)
	}
	var samples []float64
	var names []string
	switch v := v.(type) {
	case model.Vector:
		for _, s := range v {
			samples, names = append(samples, float64(s.Value)), append(names, s.Metric.String())
		}
	case *model.Scalar:
		samples, names = append(samples, float64(v.Value)), append(names, "")
	default:
		return "not a number", fmt.Sprintf("the query returns a %s, not an instant vector or a scalar", v.Type())
	}
	if len(samples) == 0 {
		if q.NoData == "pass" {
			return "no data", ""
		}
		return "no data", "the query returned no data, so there is no evidence of health (noData: pass accepts that)"
	}
	worst, worstName, out := samples[0], names[0], false
	for i, s := range samples {
		bad := math.IsNaN(s) || (q.Max != nil && s > *q.Max) || (q.Min != nil && s < *q.Min)
		if bad && !out {
			worst, worstName, out = s, names[i], true
		}
		if !out && q.Max != nil && s > worst {
			worst, worstName = s, names[i]
		}
	}
	value := formatValue(worst)
	if !out {
		return value, ""
	}
	series := ""
	if worstName != "" && worstName != "{}" {
		series = " for " + worstName
	}
	return value, fmt.Sprintf("%s%s is outside %s", value, series, q.bounds())
}

func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return fmt.Sprintf("%.4g", v)
}

// results evaluates the queries when the interval has passed (else reuses the last evaluation):
// one gate per query, with its value and bounds; not OK while out of bounds (or unanswered), and
// failing (problems) once that has lasted its `for`.
func (p *promGates) results(ctx context.Context) []gateResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.last.IsZero() || now.Sub(p.last) >= p.interval() {
		wrong := p.evaluate(ctx)
		for i := range p.states {
			switch {
			case wrong[i] == "":
				p.states[i].bad = time.Time{}
			case p.states[i].bad.IsZero():
				p.states[i].bad = now
			}
			p.states[i].why = wrong[i]
		}
		p.last = now
	}
	var out []gateResult
	for i, q := range p.cfg.Queries {
		st := p.states[i]
		r := gateResult{GateState: runbook.GateState{Name: q.Name, Kind: "prometheus", Value: st.value, Bounds: q.bounds(), OK: st.bad.IsZero(), Why: st.why}}
		if !st.bad.IsZero() && now.Sub(st.bad) >= q.For.Duration {
			held := ""
			if q.For.Duration > 0 {
				held = fmt.Sprintf(" for %s", now.Sub(st.bad).Round(time.Second))
			}
			r.problems = []string{fmt.Sprintf("Prometheus gate %q: %s%s", q.Name, st.why, held)}
		}
		out = append(out, r)
	}
	return out
}

// problems lists the gates that are out of bounds for at least their `for`.
func (p *promGates) problems(ctx context.Context) []string {
	var out []string
	for _, r := range p.results(ctx) {
		out = append(out, r.problems...)
	}
	return out
}

// bounds says the query's bounds: "min 0.9, max 1".
func (q PromQuery) bounds() string {
	var b []string
	if q.Min != nil {
		b = append(b, fmt.Sprintf("min %g", *q.Min))
	}
	if q.Max != nil {
		b = append(b, fmt.Sprintf("max %g", *q.Max))
	}
	return strings.Join(b, ", ")
}

// redNow lists the queries out of bounds or unanswered at their last evaluation, whatever their
// `for`: before any node moves, a gate already red is not a state to start an upgrade from.
func (p *promGates) redNow(ctx context.Context) []string {
	p.problems(ctx) // evaluates, the first time
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for i, q := range p.cfg.Queries {
		if why := p.states[i].why; why != "" {
			out = append(out, fmt.Sprintf("Prometheus gate %q: %s", q.Name, why))
		}
	}
	return out
}

// alertGate asks Alertmanager which matching alerts fire.
type alertGate struct {
	cfg    AlertmanagerGate
	client *http.Client
}

// firingAlert is what drydock reads of Alertmanager's /api/v2/alerts.
type firingAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	StartsAt    time.Time         `json:"startsAt"`
}

// firing lists the active alerts that match, neither silenced nor inhibited. (Alertmanager's Go
// client is generated go-openapi code with a large dependency tree; this is one GET.)
func (a *alertGate) firing(ctx context.Context) ([]firingAlert, error) {
	q := url.Values{"active": {"true"}, "silenced": {"false"}, "inhibited": {"false"}, "unprocessed": {"false"}}
	for _, m := range a.cfg.Matchers {
		q.Add("filter", m)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(a.cfg.URL, "/")+"/api/v2/alerts?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, errors.New(explain("Alertmanager", a.cfg.URL, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&msg)
		return nil, fmt.Errorf("alertmanager %s answered %s: %s", a.cfg.URL, resp.Status, msg)
	}
	var alerts []firingAlert
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		return nil, fmt.Errorf("alertmanager %s: read alerts: %w", a.cfg.URL, err)
	}
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].Fingerprint < alerts[j].Fingerprint })
	return alerts, nil
}

// key identifies one firing of an alert: an alert that resolves and fires again has a new start,
// so it counts even when it was firing when the step began.
func (al firingAlert) key() string {
	return al.Fingerprint + "@" + al.StartsAt.UTC().Format(time.RFC3339Nano)
}

// problems lists the matching alerts that fire and were not firing when the step began.
func (a *alertGate) problems(ctx context.Context, baseline map[string]bool) []string {
	alerts, err := a.firing(ctx)
	if err != nil {
		return []string{"Alertmanager gate: " + err.Error()}
	}
	var out []string
	for _, al := range alerts {
		if baseline[al.key()] {
			continue
		}
		out = append(out, fmt.Sprintf("Alertmanager gate: alert %s firing since %s (%s)", al.Labels["alertname"], al.StartsAt.Format(time.TimeOnly), labelString(al.Labels)))
	}
	return out
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return strings.Join(parts, ", ")
}
