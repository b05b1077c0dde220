package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/session-gate/session_gate/internal/proc"
)

// redisProc is a redis-server on a loopback port. In the redis-restart run
// it keeps an append-only file synced on every write, so that a SIGKILL
// loses nothing it acknowledged: the restarted Redis comes back with every
// session, and a session lost after the restart is the module's doing, not
// the soak's. Otherwise it keeps nothing on disk, as in the project's tests:
// an fsync per write on a disk shared with other work stalls Redis for
// seconds, which would measure the disk rather than the module.
type redisProc struct {
	bin, dir, logPath string
	port              int
	persist           bool
	process           *proc.Process // nil when not running
}

func startRedis(dir string, persist bool) (*redisProc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install -y --no-install-recommends redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisProc{bin: bin, dir: dir, port: port, logPath: filepath.Join(dir, "redis.log"), persist: persist}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return r, r.start()
}

func (r *redisProc) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

func (r *redisProc) start() error {
	args := []string{"--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--dir", r.dir, "--appendonly", "no"}
	if r.persist {
		args = append(args[:len(args)-1], "yes", "--appendfsync", "always")
	}
	p, err := proc.Start(exec.Command(r.bin, args...), r.logPath)
	if err != nil {
		return err
	}
	r.process = p
	return p.WaitReady(10*time.Second, func() error {
		if resp, err := r.command("PING"); err != nil || resp != "+PONG" {
			return fmt.Errorf("PING: %q, %v (see %s)", resp, err, r.logPath)
		}
		return nil
	})
}

// kill ends the server with SIGKILL, as a crash or an OOM kill would.
func (r *redisProc) kill() {
	if r.process != nil {
		r.process.Kill()
		r.process = nil
	}
}

// stop shuts the server down at the end of the run.
func (r *redisProc) stop() {
	if r.process != nil {
		r.process.Stop(func() { _, _ = r.command("SHUTDOWN NOSAVE") }, 5*time.Second)
		r.process = nil
	}
}

// dbsize counts the keys, to show that the restart kept the sessions.
func (r *redisProc) dbsize() string {
	v, err := r.command("DBSIZE")
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(v, ":")
}

// command sends one inline command and returns the first reply line.
func (r *redisProc) command(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second)
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

// stallWatch PINGs Redis every 100 ms on its own connection and keeps the
// windows in which an answer took longer than stallAfter: Redis itself (an
// fsync on a busy disk, with appendfsync always) or the machine stalled.
// The store's read timeout is 1 s, so a 503 that overlaps such a window is
// the store's honest answer, not the module's fault; any other 503 outside
// the fault is unexpected.
type stallWatch struct {
	mu      sync.Mutex
	windows [][2]time.Time
	maxRTT  time.Duration
	pings   int
}

const stallAfter = 500 * time.Millisecond

func (r *redisProc) watchStalls(ctx context.Context) *stallWatch {
	s := &stallWatch{}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sent := time.Now()
			_, err := r.command("PING")
			rtt := time.Since(sent)
			if err != nil {
				continue // down: the fault window covers it
			}
			s.mu.Lock()
			s.pings++
			s.maxRTT = max(s.maxRTT, rtt)
			if rtt > stallAfter {
				s.windows = append(s.windows, [2]time.Time{sent, sent.Add(rtt)})
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// overlaps reports whether e overlapped a stall, with the store's 1 s
// timeout of slack before it.
func (s *stallWatch) overlaps(e *exchange) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.windows {
		if e.recv.After(w[0].Add(-time.Second)) && e.sent.Before(w[1].Add(time.Second)) {
			return true
		}
	}
	return false
}

func (s *stallWatch) report() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("redis PING every 100 ms: %d answered, slowest %v, %d over %v", s.pings,
		s.maxRTT.Round(time.Millisecond), len(s.windows), stallAfter)
}
