package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// flaky answers the first n requests of each method with code, then a namespace.
func flaky(t *testing.T, n int32, code int, retryAfter string) (*httptest.Server, *atomic.Int32, *atomic.Int32) {
	var gets, posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &gets
		if r.Method != http.MethodGet {
			c = &posts
		}
		if c.Add(1) <= n {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			reason := metav1.StatusReasonInternalError
			if code == http.StatusNotFound {
				reason = metav1.StatusReasonNotFound
			}
			_, _ = fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":%q,"code":%d}`, reason, code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x"}}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &gets, &posts
}

func client(t *testing.T, srv *httptest.Server) kubernetes.Interface {
	c, err := kubernetes.NewForConfig(Resilient(&rest.Config{Host: srv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestResilientRetriesReads: a read that gets 5xx answers is asked again until it succeeds.
func TestResilientRetriesReads(t *testing.T) {
	t.Parallel()
	for _, code := range []int{500, 503, 504, 429} {
		srv, gets, _ := flaky(t, 2, code, "")
		if _, err := client(t, srv).CoreV1().Namespaces().Get(context.Background(), "x", metav1.GetOptions{}); err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		if gets.Load() != 3 {
			t.Fatalf("%d: %d requests, want 3", code, gets.Load())
		}
	}
}

// TestResilientLeavesWritesAlone: a write is never repeated by the transport (only its caller knows
// whether it may be), and a 4xx read is not retried.
func TestResilientLeavesWritesAlone(t *testing.T) {
	t.Parallel()
	srv, _, posts := flaky(t, 1, 500, "")
	_, err := client(t, srv).CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsInternalError(err) || posts.Load() != 1 {
		t.Fatalf("create: %v after %d requests, want the 500 after 1", err, posts.Load())
	}
	srv, gets, _ := flaky(t, 1, 404, "")
	if _, err := client(t, srv).CoreV1().Namespaces().Get(context.Background(), "x", metav1.GetOptions{}); !apierrors.IsNotFound(err) || gets.Load() != 1 {
		t.Fatalf("get: %v after %d requests, want the 404 after 1", err, gets.Load())
	}
}

// TestResilientGivesUpWithTheContext: retries end with the request's deadline; the caller sees
// the last answer.
func TestResilientGivesUpWithTheContext(t *testing.T) {
	t.Parallel()
	srv, _, _ := flaky(t, 1000, 503, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client(t, srv).CoreV1().Namespaces().Get(ctx, "x", metav1.GetOptions{})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

// TestNeverReachedFailsFast: an apiserver that never answered (nothing listens) is reported after
// the first-contact budget, not after the two minutes a blip gets; one that answered before is
// waited for until the read's deadline. (The budget is shortened here; Resilient uses 10s.)
func TestNeverReachedFailsFast(t *testing.T) {
	t.Parallel()
	const budget = 700 * time.Millisecond
	resilient := func(host string) kubernetes.Interface {
		cfg := &rest.Config{Host: host}
		reached := &atomic.Bool{}
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return &retryReads{next: rt, reached: reached, firstContact: budget}
		})
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close() // nothing listens there now: connections are refused
	start := time.Now()
	_, err := resilient(url).CoreV1().Namespaces().Get(context.Background(), "x", metav1.GetOptions{})
	if took := time.Since(start); err == nil || !dialFailed(err) || took > budget+3*time.Second {
		t.Fatalf("never reached: %v after %s", err, took)
	}

	// Reached once, then gone (an apiserver restarting): the read keeps trying past the budget.
	srv, _, _ := flaky(t, 0, 0, "")
	rc := resilient(srv.URL)
	if _, err := rc.CoreV1().Namespaces().Get(context.Background(), "x", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	start = time.Now()
	_, err = rc.CoreV1().Namespaces().Get(ctx, "x", metav1.GetOptions{})
	if took := time.Since(start); err == nil || took < 3*budget {
		t.Fatalf("reached before, then refused: gave up after %s (%v); want retries past the first-contact budget", took, err)
	}
}
