// Package loadgen sends HTTP requests at a fixed rate to one address and counts, second by second,
// what was sent, what failed and how long the answers took: the measure of "not a request lost"
// while real nodes are drained and upgraded.
//
// It is bounded and local by construction: the target must be an IP literal on loopback or inside a
// network the harness created and names in Config.Allowed (no name is resolved, nothing else is
// reached), and a run ends after Duration or MaxRequests, whichever comes first.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// Limits a Config may not exceed.
const (
	MaxRate     = 1000
	MaxDuration = 2 * time.Hour
)

// Config is one load run.
type Config struct {
	// Target is http://IP:PORT/PATH; the host is an IP literal.
	Target string
	// Allowed are the networks the target may be in besides loopback: those the harness created.
	Allowed []netip.Prefix
	// Rate in requests per second (1..MaxRate).
	Rate int
	// Duration bounds the run (at most MaxDuration).
	Duration time.Duration
	// MaxRequests bounds it too (at least 1, at most Rate × Duration in seconds).
	MaxRequests int
	// Timeout of one request (default 2s).
	Timeout time.Duration
}

// Validate says what is wrong with c and how to fix it.
func (c Config) Validate() error {
	u, err := url.Parse(c.Target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("loadgen: target %q: want http://IP:PORT/PATH", c.Target)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return fmt.Errorf("loadgen: target %q: the host must be an IP address (no name is resolved)", c.Target)
	}
	if !c.allowed(ip) {
		return fmt.Errorf("loadgen: target %s is neither loopback nor in a network the harness created (%v): refused", ip, c.Allowed)
	}
	switch {
	case c.Rate < 1 || c.Rate > MaxRate:
		return fmt.Errorf("loadgen: rate %d: want 1 to %d requests per second", c.Rate, MaxRate)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("loadgen: duration %s: want more than 0 and at most %s", c.Duration, MaxDuration)
	case c.MaxRequests < 1 || c.MaxRequests > c.Rate*int(c.Duration.Seconds()+1):
		return fmt.Errorf("loadgen: max requests %d: want 1 to rate × duration (%d)", c.MaxRequests, c.Rate*int(c.Duration.Seconds()+1))
	}
	return nil
}

func (c Config) allowed(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	for _, p := range c.Allowed {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// Second is what the requests sent during one second did.
type Second struct {
	// T is the second's start (Unix seconds).
	T      int64          `json:"t"`
	Sent   int            `json:"sent"`
	Failed int            `json:"failed"`
	Errors map[string]int `json:"errors,omitempty"`
	// Latency of the answered requests.
	Latency Histogram `json:"latency"`
}

// Run sends the requests and calls out once per second of sending, in order, after every request
// sent in that second was answered or timed out. It returns when the run is over or ctx ends.
func Run(ctx context.Context, c Config, out func(Second)) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	client := &http.Client{Timeout: c.Timeout, Transport: &http.Transport{
		Proxy:               nil, // never through a proxy: the target is local
		DialContext:         (&net.Dialer{Timeout: c.Timeout}).DialContext,
		MaxIdleConnsPerHost: c.Rate,
	}}
	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	// Seconds are handed on in order by one goroutine, each once its requests are over, so that
	// sending keeps its rate while a slow second is waited for.
	q := make(chan *bucket, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range q {
			b.wg.Wait()
			out(b.s)
		}
	}()
	sendAll(ctx, c, client, q)
	close(q)
	<-done
	return nil
}

// sendAll sends at the rate until the run is over, a bucket a second into q.
func sendAll(ctx context.Context, c Config, client *http.Client, q chan<- *bucket) {
	tick := time.NewTicker(time.Second / time.Duration(c.Rate))
	defer tick.Stop()
	var cur *bucket
	for sent := 0; sent < c.MaxRequests; sent++ {
		select {
		case <-ctx.Done():
			sent = c.MaxRequests
			continue
		case now := <-tick.C:
			if cur == nil || now.Unix() != cur.s.T {
				if cur != nil {
					q <- cur
				}
				cur = &bucket{s: Second{T: now.Unix()}}
			}
			cur.send(client, c.Target)
		}
	}
	if cur != nil {
		q <- cur
	}
}

// bucket collects one second's requests.
type bucket struct {
	mu sync.Mutex
	wg sync.WaitGroup
	s  Second
}

func (b *bucket) send(client *http.Client, target string) {
	b.mu.Lock()
	b.s.Sent++
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		start := time.Now()
		kind := get(client, target)
		b.mu.Lock()
		defer b.mu.Unlock()
		if kind != "" {
			b.s.Failed++
			if b.s.Errors == nil {
				b.s.Errors = map[string]int{}
			}
			b.s.Errors[kind]++
			return
		}
		b.s.Latency.Add(time.Since(start))
	}()
}

// get sends one request; "" when it was answered 2xx, else what went wrong.
func get(client *http.Client, target string) string {
	resp, err := client.Get(target)
	if err != nil {
		return errorKind(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Sprintf("http %d", resp.StatusCode)
	}
	return ""
}

// errorKind names a transport error by its kind, not its text: refused, reset, timeout, other.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	return "other"
}
