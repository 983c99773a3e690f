// pause: the sandbox ("infra") container of every pod on the test harness's real kubelet node
// (test/cluster/kubelet-images.ts builds it statically into an image). Like Kubernetes' own pause,
// it holds the pod's namespaces open, exits 0 on SIGINT/SIGTERM and, being PID 1 of the pod,
// reaps orphaned children so they do not linger as zombies.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
