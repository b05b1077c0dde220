// Package caddyproc runs real Caddy processes, built from this module's
// ./cmd/caddy, for the tests and the soak: each with a home of its own
// (data, config and storage under its directory), a Caddyfile that may
// change between start and reload, and its log in a file.
package caddyproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/session-gate/session_gate/internal/proc"
)

// Build builds ./cmd/caddy of the module that holds the working directory
// into dir and returns the binary's path.
func Build(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// ModuleRoot walks up from the working directory to the go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

// Caddy is one Caddy instance: a binary, a directory it owns, the Caddyfile
// it runs (Config, written by the caller) and the admin address that
// Caddyfile gives.
type Caddy struct {
	Bin, Dir, Config, AdminAddr string

	process *proc.Process // nil when not running
}

// LogPath is where the instance's output goes, across restarts.
func (c *Caddy) LogPath() string { return filepath.Join(c.Dir, "caddy.log") }

// Command runs a caddy subcommand in the instance's environment.
func (c *Caddy) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(c.Dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(c.Dir, "config"),
		"HOME="+c.Dir,
	)
	return cmd
}

// Start runs `caddy run` with the Caddyfile and waits, up to within, for
// ready to return nil.
func (c *Caddy) Start(within time.Duration, ready func() error) error {
	if f, err := os.OpenFile(c.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		fmt.Fprintf(f, "----- %s: caddy run\n", time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
	p, err := proc.Start(c.Command(context.Background(), "run", "--config", c.Config, "--adapter", "caddyfile"), c.LogPath())
	if err != nil {
		return fmt.Errorf("caddy run: %w", err)
	}
	c.process = p
	if err := p.WaitReady(within, ready); err != nil {
		return fmt.Errorf("caddy did not start: %w; its log:\n%s", err, p.LogTail(6000))
	}
	return nil
}

// Reload runs `caddy reload` with the Caddyfile as it is now.
func (c *Caddy) Reload(force bool) error {
	args := []string{"reload", "--config", c.Config, "--adapter", "caddyfile", "--address", c.AdminAddr}
	if force {
		args = append(args, "--force")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	if out, err := c.Command(ctx, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("caddy reload (after %v): %w\n%s", time.Since(began).Round(time.Millisecond), err, out)
	}
	if !c.Running() {
		return fmt.Errorf("caddy exited during the reload; its log:\n%s", c.process.LogTail(6000))
	}
	return nil
}

// Stop runs `caddy stop` against the admin API and waits for the process
// to exit cleanly, so that what it holds (a bolt file) is released.
func (c *Caddy) Stop() error {
	if !c.Running() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var stopErr error
	clean := c.process.Stop(func() {
		if out, err := c.Command(ctx, "stop", "--address", c.AdminAddr).CombinedOutput(); err != nil {
			stopErr = fmt.Errorf("caddy stop: %w\n%s", err, out)
		}
	}, 10*time.Second)
	state := c.process.State()
	c.process = nil
	switch {
	case stopErr != nil:
		return stopErr
	case !clean:
		return fmt.Errorf("caddy still ran 10s after caddy stop (killed)")
	case !state.Success():
		return fmt.Errorf("caddy exited with %v after caddy stop", state)
	}
	return nil
}

// Kill ends the instance if it runs: SIGTERM, then SIGKILL after grace.
func (c *Caddy) Kill(grace time.Duration) {
	if c.process != nil {
		c.process.Stop(nil, grace)
		c.process = nil
	}
}

// Running reports whether the instance runs.
func (c *Caddy) Running() bool { return c.process != nil && c.process.Running() }

// Pid is the running instance's process id (0 when none runs).
func (c *Caddy) Pid() int {
	if c.process == nil {
		return 0
	}
	return c.process.Pid()
}

// LogTail is the last n bytes of the instance's log.
func (c *Caddy) LogTail(n int) string { return proc.Tail(c.LogPath(), n) }
