// Package redistest starts throw-away redis-servers for tests: one per call,
// on a free loopback port, no persistence, its output in a file of the test's
// temp dir. Readiness and shutdown speak RESP over TCP, so redis-cli is not
// needed. Only tests import it.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/session-gate/session_gate/internal/proc"
)

// Server is one redis-server process (or none, between Stop and Restart).
type Server struct {
	tb      testing.TB
	bin     string
	port    int
	dir     string
	logPath string
	process *proc.Process // nil between Stop and Restart
}

// Start starts a redis-server and stops it when the test ends. If
// redis-server is not installed the test is skipped, except under CI=true
// where a missing server must fail loudly rather than pass by skipping.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found in PATH (apt-get install -y --no-install-recommends redis-server)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg + "; skipping the Redis tests")
	}
	r := &Server{tb: tb, bin: bin, port: FreePort(tb), dir: tb.TempDir()}
	r.logPath = filepath.Join(r.dir, "redis.log")
	r.start()
	tb.Cleanup(r.Stop)
	return r
}

// URL is redis://127.0.0.1:PORT.
func (r *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

// Addr is 127.0.0.1:PORT.
func (r *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// Port is the server's TCP port; it stays the same across Restart.
func (r *Server) Port() int { return r.port }

func (r *Server) start() {
	r.tb.Helper()
	p, err := proc.Start(exec.Command(r.bin,
		"--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir), r.logPath)
	if err != nil {
		r.tb.Fatalf("starting redis-server: %v", err)
	}
	r.process = p
	err = p.WaitReady(10*time.Second, func() error {
		if resp, err := r.Command("PING"); err != nil || resp != "+PONG" {
			return fmt.Errorf("PING: %q, %v", resp, err)
		}
		return nil
	})
	if err != nil {
		p.Kill()
		r.tb.Fatalf("redis-server did not start: %v; its log:\n%s", err, r.Log())
	}
}

// Stop shuts the server down without saving and waits for it to exit
// (killing it after 5 s). Stopping a stopped server does nothing.
func (r *Server) Stop() {
	if r.process == nil {
		return
	}
	// The server closes the connection instead of answering SHUTDOWN.
	r.process.Stop(func() { _, _ = r.Command("SHUTDOWN NOSAVE") }, 5*time.Second)
	r.process = nil
}

// Restart starts the server again on the same port (empty: nothing was saved).
func (r *Server) Restart() {
	r.tb.Helper()
	r.Stop()
	r.start()
}

// Signal sends sig to the running server, e.g. SIGSTOP to make it hang.
func (r *Server) Signal(sig os.Signal) error {
	if r.process == nil {
		return fmt.Errorf("redis-server is not running")
	}
	return r.process.Signal(sig)
}

// Command sends one inline command and returns the first reply line.
func (r *Server) Command(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// Log is what the server has written so far.
func (r *Server) Log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// FreePort asks the kernel for a loopback port that is free right now.
// Another process could take it before the caller binds it; the caller then
// fails with a log that says so.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
