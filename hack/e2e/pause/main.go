// Command pause is the pod sandbox ("infra") container of the end-to-end
// test cluster: it holds the pod's namespaces, reaps the children that are
// reparented to it and exits on SIGINT or SIGTERM. The e2e images script
// builds it statically into a FROM-scratch image, since no registry is
// reachable to pull the usual one from.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
