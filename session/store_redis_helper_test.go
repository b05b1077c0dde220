package session

// A throw-away redis-server for tests: one per call, on a free loopback
// port, no persistence, its output in a file of the test's temp dir. It
// depends on nothing but the standard library and testing (readiness and
// shutdown speak RESP over TCP, so redis-cli is not needed), so the file
// can be copied into another package as is.

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
)

type testRedisServer struct {
	tb      testing.TB
	bin     string
	port    int
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startTestRedis starts a redis-server and stops it when the test ends. If
// redis-server is not installed the test is skipped, except under CI=true
// where a missing server must fail loudly rather than pass by skipping.
func startTestRedis(tb testing.TB) *testRedisServer {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found in PATH (apt-get install -y --no-install-recommends redis-server)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg + "; skipping the Redis tests")
	}
	r := &testRedisServer{tb: tb, bin: bin, port: freeLoopbackPort(tb), dir: tb.TempDir()}
	r.logPath = filepath.Join(r.dir, "redis.log")
	r.start()
	tb.Cleanup(r.Stop)
	return r
}

// URL is redis://127.0.0.1:PORT.
func (r *testRedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

// Addr is 127.0.0.1:PORT.
func (r *testRedisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *testRedisServer) start() {
	r.tb.Helper()
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.tb.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy of the descriptor
	cmd := exec.Command(r.bin,
		"--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	// Output to a file, never to the test's pipes: a child holding them
	// would keep `go test` waiting after the test ends.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		r.tb.Fatalf("starting redis-server: %v", err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, r.exited)

	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := r.command("PING"); err == nil && resp == "+PONG" {
			return
		}
		select {
		case <-r.exited:
			r.tb.Fatalf("redis-server exited at start; its log:\n%s", r.log())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			r.tb.Fatalf("redis-server did not answer PING within 10s; its log:\n%s", r.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop shuts the server down without saving and waits for it to exit
// (killing it after 5 s). Stopping a stopped server does nothing.
func (r *testRedisServer) Stop() {
	if r.cmd == nil {
		return
	}
	_, _ = r.command("SHUTDOWN NOSAVE") // the server closes the connection instead of answering
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// Restart starts the server again on the same port (empty: nothing was saved).
func (r *testRedisServer) Restart() {
	r.tb.Helper()
	r.Stop()
	r.start()
}

// command sends one inline command and returns the first reply line.
func (r *testRedisServer) command(cmd string) (string, error) {
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

func (r *testRedisServer) log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// freeLoopbackPort asks the kernel for a port that is free right now.
// Another process could take it before redis-server binds it; start() then
// fails with the server's log, which says so.
func freeLoopbackPort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
