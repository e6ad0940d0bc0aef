// Package faults injects the failures a real apiserver connection has into a client's requests, at
// a seeded rate, for drydock's fault-injection tests and benchmark: 500, 503 and 504 answers, 429
// with Retry-After, connections reset before the request reaches the server or after the server
// acted on it (the answer is lost), watch streams cut short, and latency. It is an http.RoundTripper
// that wraps the real one (rest.Config.Wrap), so everything above it — client-go, informers, drydock
// — sees what it would see from a flaky network or a restarting apiserver.
package faults

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// Kind is one kind of injected fault.
type Kind string

const (
	Status500    Kind = "500"
	Status503    Kind = "503"
	Status504    Kind = "504"
	Throttled429 Kind = "429"       // with Retry-After: 1
	ResetBefore  Kind = "reset"     // connection reset before the request is sent
	LostAnswer   Kind = "lost"      // the server acted; the connection broke before the answer
	CutWatch     Kind = "cut-watch" // a watch stream ends early
	Latency      Kind = "latency"   // 10-100 ms more
)

// AllKinds is every kind, in a fixed order.
var AllKinds = []Kind{Status500, Status503, Status504, Throttled429, ResetBefore, LostAnswer, CutWatch, Latency}

// Config says what to inject.
type Config struct {
	Seed uint64
	// Rate is the chance that a request gets a fault (0..1).
	Rate float64
	// Kinds to choose from (default AllKinds).
	Kinds []Kind
	// Only, when set, limits the faults to the requests it matches (e.g. the patches that uncordon
	// a node, with Rate 1: a cleanup whose every write fails); the others pass untouched and uncounted.
	Only func(*http.Request) bool
}

// Injector counts what it injected; share one among the clients of a test.
type Injector struct {
	cfg   Config
	mu    sync.Mutex
	rng   *rand.Rand
	count map[Kind]*atomic.Int64
	total atomic.Int64
	off   atomic.Bool
}

// New returns an injector.
func New(cfg Config) *Injector {
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = AllKinds
	}
	in := &Injector{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), count: map[Kind]*atomic.Int64{}}
	for _, k := range AllKinds {
		in.count[k] = &atomic.Int64{}
	}
	return in
}

// Wrap returns a copy of cfg whose requests pass through the injector.
func (in *Injector) Wrap(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &transport{in: in, next: rt} })
	return c
}

// Pause stops (true) or resumes injecting: a test's own checks use the same clients.
func (in *Injector) Pause(off bool) { in.off.Store(off) }

// Add adds other's counts to in's (a summary over several injectors).
func (in *Injector) Add(other *Injector) {
	counts, total := other.Counts()
	for k, n := range counts {
		in.count[k].Add(n)
	}
	in.total.Add(total)
}

// Counts returns how many faults of each kind were injected, and the requests seen.
func (in *Injector) Counts() (map[Kind]int64, int64) {
	out := map[Kind]int64{}
	for k, c := range in.count {
		out[k] = c.Load()
	}
	return out, in.total.Load()
}

func (in *Injector) String() string {
	counts, total := in.Counts()
	s := fmt.Sprintf("%d requests", total)
	for _, k := range AllKinds {
		if n := counts[k]; n > 0 {
			s += fmt.Sprintf(", %s %d", k, n)
		}
	}
	return s
}

// pick decides the fault for one request ("" for none) and a number for its details.
func (in *Injector) pick(watch bool) (Kind, float64) {
	in.total.Add(1)
	if in.off.Load() {
		return "", 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.rng.Float64() >= in.cfg.Rate {
		return "", 0
	}
	var kinds []Kind
	for _, k := range in.cfg.Kinds {
		if (k == CutWatch) == watch || k == Latency || (watch && (k == Status500 || k == Status503 || k == ResetBefore)) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return "", 0
	}
	k := kinds[in.rng.IntN(len(kinds))]
	in.count[k].Add(1)
	return k, in.rng.Float64()
}

type transport struct {
	in   *Injector
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.in.cfg.Only != nil && !t.in.cfg.Only(req) {
		return t.next.RoundTrip(req)
	}
	watch := req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1"
	kind, x := t.in.pick(watch)
	switch kind {
	case Status500:
		return statusResponse(req, http.StatusInternalServerError, "InternalError", 0), nil
	case Status503:
		return statusResponse(req, http.StatusServiceUnavailable, "ServiceUnavailable", 0), nil
	case Status504:
		return statusResponse(req, http.StatusGatewayTimeout, "Timeout", 0), nil
	case Throttled429:
		return statusResponse(req, http.StatusTooManyRequests, "TooManyRequests", 1), nil
	case ResetBefore:
		drain(req)
		return nil, reset("write")
	case Latency:
		time.Sleep(time.Duration(10+90*x) * time.Millisecond)
	case LostAnswer:
		resp, err := t.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, reset("read")
	case CutWatch:
		resp, err := t.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		body := resp.Body
		time.AfterFunc(time.Duration(200+2000*x)*time.Millisecond, func() { body.Close() })
		return resp, nil
	}
	return t.next.RoundTrip(req)
}

func drain(req *http.Request) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
}

func reset(op string) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Err: &net.OpError{Op: op, Err: syscall.ECONNRESET}}
}

func statusResponse(req *http.Request, code int, reason string, retryAfter int) *http.Response {
	drain(req)
	body := fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"injected fault: %d %s","reason":%q,"code":%d}`, code, reason, reason, code)
	h := http.Header{"Content-Type": []string{"application/json"}}
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Header: h,
		Body: io.NopCloser(bytes.NewBufferString(body)), ContentLength: int64(len(body)), Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}
