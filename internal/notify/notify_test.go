package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver records what webhooks are sent; fail answers the first fail requests with 503.
func receiver(t *testing.T, fail int) (*httptest.Server, func() []http.Header, func() []string) {
	var mu sync.Mutex
	var headers []http.Header
	var bodies []string
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		n++
		if n <= fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		headers = append(headers, r.Header.Clone())
		bodies = append(bodies, string(b))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []http.Header { mu.Lock(); defer mu.Unlock(); return headers },
		func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), bodies...) }
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	when := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	n := Notification{Outcome: Paused, RunID: "r1", Runbook: "prod", Cluster: "prod-eu", Status: "paused", Message: "paused after step canary", Time: when}

	ce, _, bodies := receiver(t, 1) // the first try fails: retried
	slack, _, slackBodies := receiver(t, 0)
	var warned []error
	var mu sync.Mutex
	nt := &Notifier{Targets: []Target{{URL: ce.URL}, {URL: slack.URL + "/hook", Format: FormatSlack, On: []string{Failed, Paused}}, {URL: slack.URL + "/succeeded-only", Format: FormatSlack, On: []string{Succeeded}}},
		Warn: func(err error) { mu.Lock(); warned = append(warned, err); mu.Unlock() }}
	nt.Send(n)
	nt.Wait(30 * time.Second)

	got := bodies()
	if len(got) != 1 {
		t.Fatalf("cloudevents: %d bodies", len(got))
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(got[0]), &ev); err != nil {
		t.Fatal(err)
	}
	data, _ := ev["data"].(map[string]any)
	if ev["specversion"] != "1.0" || ev["type"] != "dev.drydock.run.paused" || ev["subject"] != "r1" || ev["source"] != "drydock/prod-eu" || data["message"] != "paused after step canary" {
		t.Errorf("cloudevent %v", ev)
	}
	sb := slackBodies()
	if len(sb) != 1 || !strings.Contains(sb[0], `"text":"drydock run r1 (prod) on prod-eu is waiting for you at a pause point: paused after step canary"`) {
		t.Errorf("slack bodies %q (want exactly one: the succeeded-only target is not told of a pause)", sb)
	}
	if len(warned) != 0 {
		t.Errorf("warnings %v", warned)
	}

	// A webhook that is down is a warning, with the URL's secret path left out, and nothing else.
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL + "/services/T000/B000/secret"
	down.Close()
	nt = &Notifier{Targets: []Target{{URL: url, Format: FormatSlack}}, Warn: func(err error) { mu.Lock(); warned = append(warned, err); mu.Unlock() }}
	nt.Send(n)
	nt.Wait(30 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(warned) != 1 || strings.Contains(warned[0].Error(), "secret") || !strings.Contains(warned[0].Error(), "the run is not affected") {
		t.Errorf("a webhook that is down: %v", warned)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Target
		err  bool
	}{
		{"https://hooks.example/x", Target{URL: "https://hooks.example/x", Format: FormatCloudEvents}, false},
		{"slack=https://hooks.slack.com/services/a", Target{URL: "https://hooks.slack.com/services/a", Format: FormatSlack}, false},
		{"https://h/x?a=b", Target{URL: "https://h/x?a=b", Format: FormatCloudEvents}, false},
		{"teams=https://h", Target{}, true},
		{"ftp://h", Target{}, true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || (!tc.err && got.URL != tc.want.URL) || got.Format != tc.want.Format {
			t.Errorf("Parse(%q) = %+v, %v", tc.in, got, err)
		}
	}
	if _, _, err := Body("xml", Notification{}); err == nil {
		t.Error("an unknown format must be refused")
	}
}
