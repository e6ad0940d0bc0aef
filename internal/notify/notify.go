// Package notify tells a webhook how a run ended: paused, blocked, failed, rolled back or
// succeeded, as Slack-compatible text or a CloudEvents JSON body. A webhook that fails is reported
// and never changes how the run ends.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// The outcomes a webhook can be told about (a target's `on`).
const (
	Paused     = "paused"
	Blocked    = "blocked"
	Failed     = "failed"
	RolledBack = "rolled-back"
	Succeeded  = "succeeded"
)

// Outcomes lists them.
var Outcomes = []string{Paused, Blocked, Failed, RolledBack, Succeeded}

// The body formats.
const (
	FormatCloudEvents = "cloudevents"
	FormatSlack       = "slack"
)

// Target is one webhook.
type Target struct {
	URL    string   // the webhook (--notify); empty when Resolve reads it
	Format string   // FormatCloudEvents (default) or FormatSlack
	On     []string // the outcomes to send; empty: all
	// Resolve reads the URL when the notification is sent (a runbook's notify: holds only a
	// reference to it: an environment variable, a file or a Secret's key).
	Resolve func(context.Context) (string, error)
	// Name says which webhook a warning is about when its URL is not known: "spec.notify[0] (env SLACK_WEBHOOK)".
	Name string
}

// Notification is one outcome of a run.
type Notification struct {
	Outcome string    `json:"outcome"`
	RunID   string    `json:"run,omitempty"`
	Runbook string    `json:"runbook,omitempty"`
	Cluster string    `json:"cluster,omitempty"`
	Status  string    `json:"status,omitempty"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Notifier sends notifications to its targets in the background; Wait waits for them.
type Notifier struct {
	Targets []Target
	Client  *http.Client
	// Warn is told about a webhook that could not be reached (it never fails the run).
	Warn func(error)

	wg sync.WaitGroup
}

// Outcome is the notification outcome of a run's final status ("" for none: interrupted, running).
func Outcome(s runbook.RunStatus) string {
	switch s {
	case runbook.RunPaused:
		return Paused
	case runbook.RunFailed, runbook.RunRollbackFailed:
		return Failed
	case runbook.RunRolledBack, runbook.RunPartlyRolledBack:
		return RolledBack
	case runbook.RunSucceeded:
		return Succeeded
	}
	return ""
}

// Send sends n to every target that wants its outcome, in the background.
func (nt *Notifier) Send(n Notification) {
	if nt == nil {
		return
	}
	for _, t := range nt.Targets {
		if len(t.On) > 0 && !slices.Contains(t.On, n.Outcome) {
			continue
		}
		nt.wg.Add(1)
		go func() {
			defer nt.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := nt.send(ctx, t, n); err != nil && nt.Warn != nil {
				nt.Warn(err)
			}
		}()
	}
}

// send resolves the target's URL when it is a reference, then posts n. Its error names the webhook
// by its reference or its scheme and host, never by the whole URL.
func (nt *Notifier) send(ctx context.Context, t Target, n Notification) error {
	if t.Resolve != nil {
		u, err := t.Resolve(ctx)
		if err != nil {
			return fmt.Errorf("notify %s: %w (the run is not affected)", t.Name, err)
		}
		if err := checkURL(u); err != nil {
			return fmt.Errorf("notify %s: %w (the run is not affected)", t.Name, err)
		}
		t.URL = u
	}
	if err := post(ctx, nt.client(), t, n); err != nil {
		return fmt.Errorf("notify %s: %w (the run is not affected)", redact(t.URL), err)
	}
	return nil
}

// Wait waits for the notifications in flight, at most d.
func (nt *Notifier) Wait(d time.Duration) {
	if nt == nil {
		return
	}
	done := make(chan struct{})
	go func() { nt.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func (nt *Notifier) client() *http.Client {
	if nt.Client != nil {
		return nt.Client
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// post sends one notification, retrying a 5xx, a 429 or a broken connection twice.
func post(ctx context.Context, c *http.Client, t Target, n Notification) error {
	body, contentType, err := Body(t.Format, n)
	if err != nil {
		return err
	}
	b := kube.Backoff()
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := c.Do(req)
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redact(ue.URL) // the error quotes the URL, whose path may be the webhook's secret
		}
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
			err = fmt.Errorf("answered %s", resp.Status)
			if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
				return err // the webhook refuses this body: asking again will not help
			}
		}
		if attempt == 3 || !kube.Sleep(ctx, b.Step()) {
			return err
		}
	}
}

// Body is the request body and content type of n in format.
func Body(format string, n Notification) ([]byte, string, error) {
	switch format {
	case FormatSlack:
		b, err := json.Marshal(map[string]string{"text": Text(n)})
		return b, "application/json", err
	case FormatCloudEvents, "":
		b, err := json.Marshal(map[string]any{
			"specversion":     "1.0",
			"type":            "dev.drydock.run." + n.Outcome,
			"source":          "drydock/" + n.Cluster,
			"id":              n.RunID + "/" + n.Outcome + "/" + n.Time.UTC().Format(time.RFC3339Nano),
			"time":            n.Time.UTC().Format(time.RFC3339Nano),
			"subject":         n.RunID,
			"datacontenttype": "application/json",
			"data":            n,
		})
		return b, "application/cloudevents+json", err
	}
	return nil, "", fmt.Errorf("unknown format %q: use %s or %s", format, FormatCloudEvents, FormatSlack)
}

// Text is the one-paragraph text of n (Slack's "text").
func Text(n Notification) string {
	what := map[string]string{Paused: "is waiting for you at a pause point", Blocked: "was blocked before anything moved",
		Failed: "failed", RolledBack: "was rolled back", Succeeded: "succeeded"}[n.Outcome]
	s := "drydock"
	if n.RunID != "" {
		s += " run " + n.RunID
	}
	if n.Runbook != "" {
		s += " (" + n.Runbook + ")"
	}
	if n.Cluster != "" {
		s += " on " + n.Cluster
	}
	return s + " " + what + ": " + n.Message
}

// Parse reads a --notify value: URL, or slack=URL / cloudevents=URL.
func Parse(v string) (Target, error) {
	format, u, found := strings.Cut(v, "=")
	if !found || strings.Contains(format, "/") {
		format, u = FormatCloudEvents, v
	}
	if format != FormatCloudEvents && format != FormatSlack {
		return Target{}, fmt.Errorf("--notify %s: unknown format %q: use URL, slack=URL or cloudevents=URL", redact(u), format)
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return Target{}, errors.New("--notify: not an http(s) URL: give https://…, slack=https://… or cloudevents=https://…")
	}
	return Target{URL: u, Format: format}, nil
}

// checkURL refuses a resolved webhook URL that is not http(s), without quoting it.
func checkURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return errors.New("the value read is not an http(s) URL: store the whole webhook URL, https://…")
	}
	return nil
}

// Redact is how a webhook URL is shown: its scheme and host only, since its path, query or user
// may be the webhook's secret (Slack's URLs are credentials).
func Redact(u string) string { return redact(u) }

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		scheme, _, _ := strings.Cut(u, "://")
		return scheme + "://…"
	}
	return p.Scheme + "://" + p.Host + "/…"
}
