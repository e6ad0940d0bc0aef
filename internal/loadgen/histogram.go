package loadgen

import (
	"math"
	"time"
)

// Histogram counts latencies in buckets growing by a factor of 2^(1/4) (about 19%) from 100µs, so
// that a quantile is known within that factor whatever the scale, and seconds merge by addition.
type Histogram [histBuckets]uint32

const (
	histBuckets = 96 // 100µs × 2^(95/4) ≈ 1.4e3 s: anything longer lands in the last
	histBase    = 100 * time.Microsecond
)

func bucketOf(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	i := int(math.Ceil(4 * math.Log2(float64(d)/float64(histBase))))
	return min(i, histBuckets-1)
}

// upper is the largest latency bucket i holds.
func upper(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Exp2(float64(i)/4))
}

// Add counts one latency.
func (h *Histogram) Add(d time.Duration) { h[bucketOf(d)]++ }

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range h {
		h[i] += o[i]
	}
}

// Count is how many latencies h holds.
func (h *Histogram) Count() int {
	n := 0
	for _, c := range h {
		n += int(c)
	}
	return n
}

// Quantile is the latency q (0..1) of the counted ones are at or under, by its bucket's upper
// bound; 0 when h is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n)))
	seen := 0
	for i, c := range h {
		seen += int(c)
		if seen >= rank {
			return upper(i)
		}
	}
	return upper(histBuckets - 1)
}

// Summary is what a span of seconds did.
type Summary struct {
	Sent, Failed int
	Errors       map[string]int
	Latency      Histogram
}

// Summarize adds up the seconds in [from, to) (Unix seconds; to 0: to the end).
func Summarize(seconds []Second, from, to int64) Summary {
	var s Summary
	for i := range seconds {
		sec := &seconds[i]
		if sec.T < from || (to != 0 && sec.T >= to) {
			continue
		}
		s.Sent += sec.Sent
		s.Failed += sec.Failed
		for k, v := range sec.Errors {
			if s.Errors == nil {
				s.Errors = map[string]int{}
			}
			s.Errors[k] += v
		}
		s.Latency.Merge(&sec.Latency)
	}
	return s
}
