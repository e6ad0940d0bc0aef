// Command loadgen sends HTTP requests at a fixed rate to one local address (internal/loadgen) and
// writes what each second did as a JSON line to stdout. It refuses any target but loopback and the
// networks given with -allow (those the harness created), and stops after -duration or
// -max-requests, whichever comes first, or on SIGTERM.
//
//	loadgen -target http://10.96.0.20/ -allow 10.96.0.0/16,10.250.0.0/16 -rate 50 -duration 30m -max-requests 90000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/drydock-dev/drydock/internal/loadgen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func run(args []string) error {
	var c loadgen.Config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.Target, "target", "", "http://IP:PORT/PATH to send requests to")
	allow := fs.String("allow", "", "comma-separated networks (CIDR) the target may be in besides loopback")
	fs.IntVar(&c.Rate, "rate", 20, "requests per second")
	fs.DurationVar(&c.Duration, "duration", 0, "how long to send (required)")
	fs.IntVar(&c.MaxRequests, "max-requests", 0, "how many requests at most (required)")
	fs.DurationVar(&c.Timeout, "timeout", 0, "timeout of one request (default 2s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*allow, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("loadgen: -allow %q: %w", s, err)
		}
		c.Allowed = append(c.Allowed, p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(os.Stdout)
	return loadgen.Run(ctx, c, func(s loadgen.Second) { _ = enc.Encode(s) })
}
