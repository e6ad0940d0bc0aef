// Command webserver is the HTTP workload of real nodes (simcluster's real-node images): it answers
// every request with its pod's name, is ready at /readyz until it is told to stop, runs a preStop
// hook at /prestop?sleep=D (a pod's lifecycle.preStop.httpGet), and on SIGTERM stops taking new
// connections after --shutdown-delay, finishing the requests under way. Each of those moments is a
// line of its own log, which the tests read: "preStop: sleeping 5s", "SIGTERM received", "stopped".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("listen", ":8080", "address to serve on")
	delay := flag.Duration("shutdown-delay", 0, "keep serving this long after SIGTERM (readiness fails meanwhile)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	name, _ := os.Hostname()
	var stopping atomic.Bool
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		fmt.Fprintf(w, "%s\n", name)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if stopping.Load() {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/prestop", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("sleep"))
		log.Printf("preStop: sleeping %s", d)
		time.Sleep(d)
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		s := <-sig
		stopping.Store(true)
		log.Printf("%s received: serving %s more, then stopping", signalName(s), *delay)
		time.Sleep(*delay)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("serving on %s as %s", *addr, name)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-done // the requests under way are answered
	log.Printf("stopped: served %d requests", served.Load())
}

func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return s.String()
}
