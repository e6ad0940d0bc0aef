// Command netrelay makes the simulated cluster's apiserver, which listens on this machine's
// loopback, reachable inside the network namespace of its real nodes: it listens on an address in
// that namespace and forwards each connection to the apiserver from this one. kube-proxy runs in
// the namespace (its rules stay there) and talks to the apiserver through it; TLS passes through
// untouched, so the apiserver's certificate for 127.0.0.1 still matches.
//
//	netrelay -netns /run/netns/drydock-3 -listen 127.0.0.1:PORT -to 127.0.0.1:PORT
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

func main() {
	netns := flag.String("netns", "", "the network namespace to listen in (a file such as /run/netns/NAME)")
	listen := flag.String("listen", "", "address to listen on inside it")
	to := flag.String("to", "", "address to forward to, from this process's own namespace")
	flag.Parse()
	if *netns == "" || *listen == "" || *to == "" {
		fmt.Fprintln(os.Stderr, "netrelay: -netns, -listen and -to are required")
		os.Exit(2)
	}
	l, err := listenIn(*netns, *listen)
	if err != nil {
		log.Fatalf("netrelay: %v", err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatalf("netrelay: accept: %v", err)
		}
		go relay(c, *to)
	}
}

// listenIn opens a listener inside the namespace at path: the socket keeps the namespace it was
// made in. Only the locked thread enters it, and it leaves again before it is unlocked.
func listenIn(path, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter %s: %w", path, err)
	}
	l, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread cannot leave: let it end with the process rather than serve from there.
		return nil, errors.Join(fmt.Errorf("leave %s: %w", path, err), lerr)
	}
	return l, lerr
}

func relay(c net.Conn, to string) {
	defer c.Close()
	u, err := net.Dial("tcp", to)
	if err != nil {
		log.Printf("netrelay: %v", err)
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(u, c)
	go cp(c, u)
	<-done
	<-done
}
