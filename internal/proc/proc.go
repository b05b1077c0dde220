// Package proc runs the child processes of the tests, the soak and the
// bench tools (Caddy, redis-server, an OpenID provider): output appended to
// a log file, never to the caller's pipes (a child holding them would keep
// `go test` waiting after the test ends); the exit watched; readiness
// polled; and a stop that asks first and kills only a process that does not
// listen.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is one started child process.
type Process struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// ErrExited is what WaitReady returns when the process ends first.
var ErrExited = errors.New("the process exited")

// Start starts cmd with its stdout and stderr appended to logPath.
func Start(cmd *exec.Cmd, logPath string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy of the descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not ended yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// State is how the process ended; nil while it runs.
func (p *Process) State() *os.ProcessState {
	if p.Running() {
		return nil
	}
	return p.cmd.ProcessState
}

// Signal sends sig, e.g. SIGSTOP to make a server hang.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// WaitReady calls ready until it returns nil, and fails when the process
// exits first or when within has passed, with ready's last error.
func (p *Process) WaitReady(within time.Duration, ready func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if !p.Running() {
			return fmt.Errorf("%w (%v)", ErrExited, p.cmd.ProcessState)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", within, err)
		}
		time.Sleep(20 * time.Millisecond) // polling, with a deadline
	}
}

// Stop asks the process to end (ask; nil sends SIGTERM), waits up to grace
// for it, then kills it, and returns once it has ended. It reports whether
// the process ended when asked. A stopped process resumes first, since it
// could obey nothing.
func (p *Process) Stop(ask func(), grace time.Duration) bool {
	if !p.Running() {
		return true
	}
	resume(p.cmd.Process)
	if ask == nil {
		ask = func() { _ = p.cmd.Process.Signal(syscall.SIGTERM) }
	}
	ask()
	select {
	case <-p.exited:
		return true
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return false
}

// Kill ends the process at once (SIGKILL: a crash without goodbye) and
// waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// LogTail is the last n bytes of the process's log.
func (p *Process) LogTail(n int) string { return Tail(p.logPath, n) }

// Tail is the last n bytes of a file ("" when it cannot be read), marked
// with a leading "…" when cut.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}
