package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Target: "http://127.0.0.1:8080/", Rate: 10, Duration: time.Second, MaxRequests: 10}
	bridge := []netip.Prefix{netip.MustParsePrefix("10.250.0.0/16")}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "" valid, else a part of the error
	}{
		{"loopback", func(*Config) {}, ""},
		{"a network the harness made", func(c *Config) { c.Target, c.Allowed = "http://10.250.3.7/", bridge }, ""},
		{"outside it", func(c *Config) { c.Target, c.Allowed = "http://10.251.0.1/", bridge }, "refused"},
		{"a public address", func(c *Config) { c.Target = "http://93.184.215.14/" }, "refused"},
		{"a name", func(c *Config) { c.Target = "http://localhost:8080/" }, "no name is resolved"},
		{"https", func(c *Config) { c.Target = "https://127.0.0.1/" }, "want http://IP:PORT/PATH"},
		{"rate 0", func(c *Config) { c.Rate = 0 }, "rate 0"},
		{"rate too high", func(c *Config) { c.Rate = MaxRate + 1 }, "rate 1001"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "duration 0s"},
		{"too long", func(c *Config) { c.Duration = MaxDuration + time.Second }, "duration"},
		{"no request bound", func(c *Config) { c.MaxRequests = 0 }, "max requests 0"},
		{"more than the rate allows", func(c *Config) { c.MaxRequests = 1000 }, "max requests 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunCountsFailures: every request sent is counted once, as answered or failed by its kind; the
// run stops at MaxRequests; the seconds come in order.
func TestRunCountsFailures(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%5 == 0 {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var seconds []Second
	err := Run(context.Background(), Config{Target: srv.URL + "/", Rate: 100, Duration: 10 * time.Second, MaxRequests: 150},
		func(s Second) { seconds = append(seconds, s) })
	if err != nil {
		t.Fatal(err)
	}
	sum := Summarize(seconds, 0, 0)
	if sum.Sent != 150 || sum.Failed != 30 || sum.Errors["http 503"] != 30 || sum.Latency.Count() != 120 {
		t.Fatalf("sent %d failed %d errors %v answered %d, want 150, 30, 30 × http 503, 120", sum.Sent, sum.Failed, sum.Errors, sum.Latency.Count())
	}
	for i := 1; i < len(seconds); i++ {
		if seconds[i].T <= seconds[i-1].T {
			t.Fatalf("second %d (%d) after %d", i, seconds[i].T, seconds[i-1].T)
		}
	}
}

// TestRunCountsRefused: a target nothing listens on fails every request as "connection refused".
func TestRunCountsRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	target := srv.URL + "/"
	srv.Close()
	var sum Summary
	err := Run(context.Background(), Config{Target: target, Rate: 50, Duration: 5 * time.Second, MaxRequests: 20},
		func(s Second) { sum.Sent += s.Sent; sum.Failed += s.Failed; sum.Errors = s.Errors })
	if err != nil || sum.Sent != 20 || sum.Failed != 20 || sum.Errors["connection refused"] == 0 {
		t.Fatalf("err %v sent %d failed %d errors %v, want 20 refused", err, sum.Sent, sum.Failed, sum.Errors)
	}
}

func TestHistogramQuantile(t *testing.T) {
	t.Parallel()
	var h Histogram
	if h.Quantile(0.99) != 0 {
		t.Fatal("an empty histogram has a p99")
	}
	for range 98 {
		h.Add(time.Millisecond)
	}
	h.Add(100 * time.Millisecond)
	h.Add(2 * time.Second)
	for _, tc := range []struct {
		q      float64
		lo, hi time.Duration
	}{{0.5, time.Millisecond, 1200 * time.Microsecond}, {0.99, 100 * time.Millisecond, 120 * time.Millisecond}, {1, 2 * time.Second, 2400 * time.Millisecond}} {
		if got := h.Quantile(tc.q); got < tc.lo || got > tc.hi {
			t.Errorf("q%v = %v, want within [%v, %v]", tc.q, got, tc.lo, tc.hi)
		}
	}
	var o Histogram
	o.Add(time.Hour)
	h.Merge(&o)
	if h.Count() != 101 || h.Quantile(1) < 20*time.Minute {
		t.Fatalf("merged: %d counted, max %v", h.Count(), h.Quantile(1))
	}
}
