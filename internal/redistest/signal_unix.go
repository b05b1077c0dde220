//go:build unix

package redistest

import (
	"os"
	"syscall"
)

// resume wakes a server stopped with SIGSTOP, so that it can obey SHUTDOWN.
func resume(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
