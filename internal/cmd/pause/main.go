// Command pause is the sandbox ("pause") image of the real nodes simcluster starts: it holds a pod's
// namespaces until the pod ends, reaping what is re-parented to it, and exits on SIGTERM or SIGINT.
// It is built into an image on this machine (internal/ociimage): nothing is pulled from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
