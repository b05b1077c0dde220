//go:build unix

package proc

import (
	"os"
	"syscall"
)

// resume wakes a process stopped with SIGSTOP, so that it can obey a stop.
func resume(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
