package sessiongate

// The operator commands that README.md and docs/ print, run by bash as
// printed against a running Caddy (the built binary). What cannot be
// literal on a page is filled in: <sid> is a live session's id, <token> an
// expired token of the gate, $TOKEN the access token of a live session,
// `caddy` is the built binary, the admin address
// localhost:2019 is the instance's (CADDY_ADMIN, which Caddy's commands
// read as their default, and in the curl lines), https://example.com/ is the
// instance's site. xcaddy.md's commands are make xcaddy-check's.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// operatorCommands are the lines of the ```sh blocks in README.md and
// docs/*.md that name session-gate or the sessions_path /account/sessions:
// the commands an operator copies. A line that is all comment is left out.
func operatorCommands(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, page := range append([]string{"README.md"}, pages...) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range regexp.MustCompile("(?ms)^```sh\n(.*?)^```").FindAllStringSubmatch(string(text), -1) {
			if !strings.Contains(block[1], "session-gate") && !strings.Contains(block[1], "/account/sessions") {
				continue
			}
			for _, l := range strings.Split(strings.TrimSpace(block[1]), "\n") {
				if !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
		}
	}
	return lines
}

func TestOperatorCommandsAsPrinted(t *testing.T) {
	commands := operatorCommands(t)
	if len(commands) < 4 {
		t.Fatalf("found %d operator commands in README.md and docs/: %q", len(commands), commands)
	}
	backend := issueBackend(t)
	inst := runCaddy(t, "operator", `
	session_gate {
		secret "`+testSecret+`"
		refresher {
			store bolt `+filepath.Join(t.TempDir(), "sessions.db")+`
			refresh_ttl 1h
			sessions_path /account/sessions
		}
	}
	handle /login {
		reverse_proxy `+backend+`
	}
	handle {
		respond "user={http.auth.user.id} role={http.auth.user.role}"
	}
`)
	bin := t.TempDir()
	if err := os.Symlink(caddyBinary(t), filepath.Join(bin, "caddy")); err != nil {
		t.Fatal(err)
	}
	expired := mintCLI(t, inst, "--sub", "alice", "--ttl", "-1m")

	// run runs one line as printed, but for the fill-ins, in the directory of
	// the instance's Caddyfile (the pages' --config Caddyfile).
	run := func(line, sid, access string) cliResult {
		t.Helper()
		filled := strings.NewReplacer("<sid>", sid, "<token>", expired, "localhost:2019", inst.adminAddr(),
			"https://example.com/", inst.base()+"/").Replace(line)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", filled)
		cmd.Dir = filepath.Dir(inst.config)
		cmd.Env = append(inst.caddyCommand(ctx).Env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "CADDY_ADMIN="+inst.adminAddr(),
			"TOKEN="+access)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
		if exit, ok := err.(*exec.ExitError); ok {
			res.code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return res
	}
	liveSIDs := func() []string { return sids(listSessions(t, inst, "alice")) }

	for _, line := range commands {
		// Each command meets alice with two live sessions.
		for len(liveSIDs()) < 2 {
			startAs(t, inst.base(), "alice")
		}
		var access string
		if strings.Contains(line, "$TOKEN") {
			access, _ = startAs(t, inst.base(), "alice") // a session of its own
		}
		live := liveSIDs()
		res := run(line, live[0], access)
		failed := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%s\n\texit %d, stdout %q, stderr %q: %s", line, res.code, res.stdout, res.stderr, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.HasPrefix(line, `curl "localhost:2019/session-gate/sessions?sub=alice"`):
			var list []sessionJSON
			if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil || !slices.Equal(sids(list), live) {
				failed("want the JSON list of %v", live)
			}
		case strings.HasPrefix(line, "curl -X DELETE localhost:2019/session-gate/sessions/<sid>"):
			if res.code != 0 || res.stdout != "" || slices.Contains(liveSIDs(), live[0]) {
				failed("want %s revoked with an empty 204", live[0])
			}
		case strings.HasPrefix(line, `curl -X DELETE "localhost:2019/session-gate/sessions?sub=alice"`):
			if res.code != 0 || strings.TrimSpace(res.stdout) != `{"revoked":2}` || len(liveSIDs()) != 0 {
				failed(`want {"revoked":2} and no session left`)
			}
		case strings.HasPrefix(line, "caddy session-gate sessions list --sub alice"):
			if res.code != 0 || !strings.HasPrefix(res.stdout, "SID ") || !strings.Contains(res.stdout, live[0]) || !strings.Contains(res.stdout, live[1]) {
				failed("want a table of %v", live)
			}
		case strings.HasPrefix(line, "caddy session-gate sessions revoke --sub alice"):
			if res.code != 0 || res.stdout != "revoked 2 session(s) of alice\n" || len(liveSIDs()) != 0 {
				failed("want both sessions revoked")
			}
		case strings.HasPrefix(line, `curl -H "Authorization: Bearer $(caddy session-gate token --config Caddyfile --sub alice --claim role=admin)"`):
			if res.code != 0 || res.stdout != "user=alice role=admin" {
				failed("want the site as alice, role admin")
			}
		case strings.HasPrefix(line, "caddy session-gate inspect --config Caddyfile <token>"):
			// The expired token the comment speaks of: inspect exits 1.
			if res.code != 1 || !strings.Contains(res.stdout, `"sub": "alice"`) ||
				!strings.Contains(res.stdout, "verdict: expired\nreason: token expired\n") {
				failed("want the claims, then verdict expired, reason token expired")
			}
		case strings.HasPrefix(line, "curl -b sAccessToken=$TOKEN https://example.com/account/sessions"):
			var own ownSessions
			if res.code != 0 || json.Unmarshal([]byte(res.stdout), &own) != nil || len(own.Sessions) != len(live) ||
				!slices.ContainsFunc(own.Sessions, func(s ownSessionJSON) bool { return s.Current && s.SID == sidOf(t, access) }) {
				failed("want the %d live sessions, $TOKEN's current", len(live))
			}
		case strings.HasPrefix(line, `curl -b sAccessToken=$TOKEN -H 'Content-Type: application/json' -d '{"others":true}'`):
			if want := fmt.Sprintf(`{"revoked":%d}`, len(live)-1); res.code != 0 || res.stdout != want ||
				!slices.Equal(liveSIDs(), []string{sidOf(t, access)}) {
				failed("want %s and only $TOKEN's session left", want)
			}
		case strings.HasPrefix(line, "curl -b sAccessToken=$TOKEN -X DELETE https://example.com/account/sessions/<sid>"):
			if res.code != 0 || res.stdout != "" || slices.Contains(liveSIDs(), live[0]) {
				failed("want %s revoked with an empty 204", live[0])
			}
		default:
			t.Errorf("%s: a command this test does not know; give it a check", line)
		}
	}
}
