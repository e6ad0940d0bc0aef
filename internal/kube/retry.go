package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Transient says whether a request that failed with err may succeed if sent again unchanged: a 5xx
// (500, 503, and the 504 the eviction API answers when its budget update conflicts), a 429 that is
// not a PodDisruptionBudget's refusal, or a connection that broke (reset, refused, EOF, timeout),
// as an apiserver restart or a load balancer produces. A refusal (4xx) is not transient.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		switch {
		case apierrors.IsTooManyRequests(err):
			return !BudgetRefusal(err)
		case code >= 500, apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsInternalError(err),
			apierrors.IsServiceUnavailable(err):
			return true
		}
		// A 4xx whose body was not a Status (a proxy's or webhook's page) is still a refusal: client-go
		// marks it an unexpected server response, which says nothing about trying again.
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		utilnet.IsConnectionReset(err) || utilnet.IsConnectionRefused(err) || utilnet.IsProbableEOF(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return false
}

// BudgetRefusal tells a 429 from a PodDisruptionBudget (the eviction would break it) apart from
// one of throttling: the budget's carries the DisruptionBudget cause.
func BudgetRefusal(err error) bool {
	return apierrors.IsTooManyRequests(err) && apierrors.HasStatusCause(err, "DisruptionBudget")
}

// Backoff is the retry schedule for transient errors: jittered, doubling from 500ms to 30s.
// Retries go on until the caller's context ends: the step's deadline bounds them, not a count.
func Backoff() wait.Backoff {
	return wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.4, Steps: 1 << 30, Cap: 30 * time.Second}
}

// RetryAfter is how long to wait before the next attempt: the backoff's next step, but never
// less than the Retry-After the server asked for.
func RetryAfter(b *wait.Backoff, err error) time.Duration {
	d := b.Step()
	if secs, ok := apierrors.SuggestsClientDelay(err); ok && time.Duration(secs)*time.Second > d {
		d = time.Duration(secs) * time.Second
	}
	return d
}

// Retry calls f until it succeeds, fails with an error that is not transient, or ctx ends (then
// the last error is returned, wrapped with the context's cause). Each failure before a retry is
// passed to retrying, which may be nil.
func Retry(ctx context.Context, retrying func(err error, wait time.Duration), f func(ctx context.Context) error) error {
	b := Backoff()
	for {
		err := f(ctx)
		if err == nil || !Transient(err) {
			return err
		}
		d := RetryAfter(&b, err)
		if retrying != nil {
			retrying(err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retried until: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Sleep waits d or until ctx ends; it says whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
