package kube

import "k8s.io/client-go/rest"

// drydock's client rate, requests a second and burst. client-go's default (5 and 10, which kubectl
// keeps) paces a drain of hundreds of pods by drydock's own requests, not by the budgets: the
// evictions of one batch of fifty nodes of thirty pods each would take five minutes at 5 a second.
// The apiserver's priority and fairness shares it with everyone else, as it does any client's.
const (
	QPS   = 50
	Burst = 100
)

// Rated returns cfg with drydock's client rate, unless cfg sets one (a rate limiter, or a rate).
func Rated(cfg *rest.Config) *rest.Config {
	if cfg.RateLimiter != nil || cfg.QPS != 0 {
		return cfg
	}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = QPS, Burst
	return c
}
