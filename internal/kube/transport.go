package kube

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
)

// Resilient returns a copy of cfg whose reads survive the faults a real apiserver connection has:
// a GET (not a watch: informers re-list and re-watch by themselves) that fails with a 5xx, a 429 or
// a broken connection is sent again with jittered backoff, never sooner than a Retry-After, until
// its context ends or readRetryFor has passed. Every client drydock builds goes through it; writes
// are retried where they are made, by kube.Retry, since only the caller knows if a write may repeat.
func Resilient(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &retryReads{next: rt} })
	return c
}

// readRetryFor bounds the retries of one read whose context has no deadline.
const readRetryFor = 2 * time.Minute

type retryReads struct{ next http.RoundTripper }

func (t *retryReads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1" {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	giveUp := time.Now().Add(readRetryFor)
	if d, ok := ctx.Deadline(); ok && d.Before(giveUp) {
		giveUp = d
	}
	b := Backoff()
	for {
		resp, err := t.next.RoundTrip(req)
		var wait time.Duration
		switch {
		case err != nil && Transient(err):
			wait = b.Step()
		case err == nil && (resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests):
			wait = b.Step()
			if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && time.Duration(secs)*time.Second > wait {
				wait = time.Duration(secs) * time.Second
			}
		default:
			return resp, err
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(giveUp) {
			return resp, err // out of time: the caller sees the last answer
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		if !Sleep(ctx, wait) {
			return nil, context.Cause(ctx)
		}
	}
}
