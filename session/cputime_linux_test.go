package session

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used (user and system, every
// thread: the garbage collector's work on what a benchmark allocated
// counts too). On a shared machine it is steadier than wall time, which
// also counts the time other work held the cores.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
