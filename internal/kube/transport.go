package kube

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// Resilient returns a copy of cfg whose reads survive the faults a real apiserver connection has:
// a GET (not a watch: informers re-list and re-watch by themselves) that fails with a 5xx, a 429 or
// a broken connection is sent again with jittered backoff, never sooner than a Retry-After, until
// its context ends or readRetryFor has passed. Every client drydock builds goes through it; writes
// are retried where they are made, by kube.Retry, since only the caller knows if a write may repeat.
//
// An apiserver that has never answered this configuration's clients (a wrong kubeconfig, a cluster
// that is down) is not a transient fault: a read that cannot even connect then gives up after
// firstContactFor, so that a mistake is reported in seconds, not minutes.
func Resilient(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	reached := &atomic.Bool{}
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &retryReads{next: rt, reached: reached, firstContact: firstContactFor}
	})
	return c
}

// readRetryFor bounds the retries of one read whose context has no deadline; firstContactFor
// those of a read that cannot connect to an apiserver that has never answered.
const (
	readRetryFor    = 2 * time.Minute
	firstContactFor = 10 * time.Second
)

type retryReads struct {
	next    http.RoundTripper
	reached *atomic.Bool // some request through this configuration got an answer
	// firstContact bounds the retries of a read that cannot connect while reached is false.
	firstContact time.Duration
}

// dialFailed says the request never reached a server: refused, no such host, no route, a dial timeout.
func dialFailed(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}

func (t *retryReads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1" {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	start := time.Now()
	giveUp := start.Add(readRetryFor)
	if d, ok := ctx.Deadline(); ok && d.Before(giveUp) {
		giveUp = d
	}
	b := Backoff()
	for {
		resp, err := t.next.RoundTrip(req)
		if err == nil {
			t.reached.Store(true)
		} else if dialFailed(err) && !t.reached.Load() && time.Since(start) > t.firstContact {
			return resp, err // never reached: a configuration problem, not a blip
		}
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
