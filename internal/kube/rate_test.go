package kube

import (
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// TestRated: drydock's rate where the config sets none; a config's own rate or limiter is kept; the
// config given is not changed.
func TestRated(t *testing.T) {
	t.Parallel()
	limiter := flowcontrol.NewFakeAlwaysRateLimiter()
	for _, tc := range []struct {
		name      string
		in        *rest.Config
		qps       float32
		burst     int
		unchanged bool
	}{
		{name: "none set", in: &rest.Config{Host: "h"}, qps: QPS, burst: Burst},
		{name: "its own rate", in: &rest.Config{Host: "h", QPS: 7, Burst: 9}, qps: 7, burst: 9, unchanged: true},
		{name: "its own limiter", in: &rest.Config{Host: "h", RateLimiter: limiter}, unchanged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Rated(tc.in)
			if got.QPS != tc.qps || got.Burst != tc.burst {
				t.Errorf("rate %v/%d, want %v/%d", got.QPS, got.Burst, tc.qps, tc.burst)
			}
			if (got == tc.in) != tc.unchanged {
				t.Errorf("returned the config given: %v, want %v", got == tc.in, tc.unchanged)
			}
			if !tc.unchanged && tc.in.QPS != 0 {
				t.Error("the config given was changed")
			}
		})
	}
}
