package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/session-gate/session_gate/internal/caddyproc"
)

// caddyfileTemplate is the site under test: a.test is an application behind
// session_gate with the internal refresher (its login handler is the soak's
// login backend, which names the user in the issue header); b.test is an API
// behind a second gate that verifies with the soak's JWKS server. Both sites
// share one port. /version is public and changes at each reload: the
// "unrelated setting" of the reload fault.
const caddyfileTemplate = `{
	admin 127.0.0.1:{{.AdminPort}}
	http_port {{.Port}}
	https_port {{.HTTPSPort}}
	auto_https off
	persist_config off
	storage file_system {{.Dir}}/storage
	grace_period 10s
}

http://a.test:{{.Port}} {
	session_gate {
		secret "{{.Secret}}"
		public /version
		refresher {
			access_ttl {{.AccessTTL}}
			refresh_ttl 1h
			reuse_grace {{.Grace}}
			{{.Store}}
		}
	}
	route {
		reverse_proxy /login 127.0.0.1:{{.BackendPort}}
		respond /version "config {{.Generation}}" 200
		respond /api/* "api {http.auth.user.id} {http.auth.user.sid}" 200
		respond "page {http.auth.user.id} {http.auth.user.sid}" 200
	}
}

http://b.test:{{.Port}} {
	session_gate {
		jwks http://127.0.0.1:{{.JWKSPort}}/jwks.json
		algorithms ES256
	}
	respond "b {http.auth.user.id}" 200
}
`

// caddyConfig fills caddyfileTemplate.
type caddyConfig struct {
	AdminPort, Port, HTTPSPort   int
	BackendPort, JWKSPort        int
	Dir, Secret, Store           string
	AccessTTL, Grace, Generation string
}

// caddyProc is the Caddy under test, run from a built binary.
type caddyProc struct {
	bin, dir string
	cfg      caddyConfig
	caddy    *caddyproc.Caddy
}

func (c *caddyProc) writeConfig() error {
	t := template.Must(template.New("Caddyfile").Parse(caddyfileTemplate))
	f, err := os.Create(c.caddy.Config)
	if err != nil {
		return err
	}
	defer f.Close()
	return t.Execute(f, c.cfg)
}

// start runs `caddy run` and waits until the site answers.
func (c *caddyProc) start() error {
	c.caddy = &caddyproc.Caddy{
		Bin: c.bin, Dir: c.dir, Config: filepath.Join(c.dir, "Caddyfile"),
		AdminAddr: fmt.Sprintf("127.0.0.1:%d", c.cfg.AdminPort),
	}
	if err := c.writeConfig(); err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	return c.caddy.Start(30*time.Second, func() error {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/version", c.cfg.Port), nil)
		req.Host = fmt.Sprintf("a.test:%d", c.cfg.Port)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/version: %d", resp.StatusCode)
		}
		return nil
	})
}

// reload writes the config with the next generation and runs `caddy reload`.
func (c *caddyProc) reload(generation string) error {
	c.cfg.Generation = generation
	if err := c.writeConfig(); err != nil {
		return err
	}
	return c.caddy.Reload(false)
}

// stop ends Caddy: SIGTERM, then SIGKILL after 10 s.
func (c *caddyProc) stop() {
	if c.caddy != nil {
		c.caddy.Kill(10 * time.Second)
	}
}

// probe reads Caddy's resident memory from /proc, its Go heap (HeapAlloc)
// from the admin endpoint's expvar, and its goroutine count from its pprof.
func (c *caddyProc) probe(label string, at time.Duration) probe {
	p := probe{label: label, at: at, rssKB: -1, heapKB: -1, goroutines: -1}
	pid := c.caddy.Pid()
	if pid == 0 {
		return p
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				p.rssKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
		f.Close()
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/vars", c.cfg.AdminPort)); err == nil {
		var vars struct {
			Memstats struct{ HeapAlloc int64 } `json:"memstats"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<22)).Decode(&vars) == nil {
			p.heapKB = vars.Memstats.HeapAlloc / 1024
		}
		resp.Body.Close()
	}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", c.cfg.AdminPort))
	if err == nil {
		line, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
		resp.Body.Close()
		// "goroutine profile: total 42"
		if i := strings.LastIndexByte(strings.TrimSpace(line), ' '); i >= 0 {
			p.goroutines, _ = strconv.Atoi(strings.TrimSpace(line)[i+1:])
		}
	}
	return p
}

// logFindings counts Caddy's warnings and errors and quotes the first few
// of each distinct message.
func (c *caddyProc) logFindings() []string {
	f, err := os.Open(c.caddy.LogPath())
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	counts := map[string]int{}
	first := map[string]string{}
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		level := jsonField(line, "level")
		if level != "warn" && level != "error" {
			continue
		}
		key := level + " " + jsonField(line, "logger") + ": " + jsonField(line, "msg")
		if counts[key] == 0 {
			order = append(order, key)
			first[key] = jsonField(line, "error")
		}
		counts[key]++
	}
	var out []string
	for _, k := range order {
		l := fmt.Sprintf("%d x %s", counts[k], k)
		if first[k] != "" {
			l += " (first: " + first[k] + ")"
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		out = append(out, "no warnings or errors")
	}
	return out
}

// jsonField pulls a string field out of one of Caddy's JSON log lines
// without decoding the whole line.
func jsonField(line, name string) string {
	i := strings.Index(line, `"`+name+`":"`)
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+4:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return rest
}

// freePort asks the kernel for a loopback port that is free right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
