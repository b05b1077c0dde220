package sessiongate

// Sessions for operators (docs/behaviour.md): the admin API on a real admin
// listener of the built binary, its bolt store held by that Caddy; the
// `caddy session-gate sessions` client; and a revocation on one Caddy
// refused by another on the same Redis within a second.

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/session-gate/session_gate/internal/redistest"
)

// adminDo sends a request to the instance's admin API.
func adminDo(t *testing.T, inst *caddyProcess, method, uri string) reply {
	t.Helper()
	return do(t, newRequest(t, method, "http://"+inst.adminAddr()+uri, nil))
}

// sidOf is the "sid" claim of an access token minted with the test secret.
func sidOf(t *testing.T, access string) string {
	t.Helper()
	sid, _ := hsClaims(t, access)["sid"].(string)
	if sid == "" {
		t.Fatal("access token without a sid")
	}
	return sid
}

// startAs starts a session for sub and returns its tokens.
func startAs(t *testing.T, base, sub string) (access, refresh string) {
	t.Helper()
	issue := `{"sub":"` + sub + `","claims":{"role":"x"}}`
	got, c := startSession(t, base, &issue)
	if got.status != 200 || c["sAccessToken"] == nil || c["sRefreshToken"] == nil {
		t.Fatalf("session start for %s: %d %q", sub, got.status, got.body)
	}
	return c["sAccessToken"].Value, c["sRefreshToken"].Value
}

// listSessions GETs the user's sessions and returns their sids.
func listSessions(t *testing.T, inst *caddyProcess, sub string) []sessionJSON {
	t.Helper()
	got := adminDo(t, inst, "GET", "/session-gate/sessions?sub="+sub)
	if got.status != 200 || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET sessions of %s: %d %q %q", sub, got.status, got.header.Get("Content-Type"), got.body)
	}
	var list []sessionJSON
	if err := json.Unmarshal([]byte(got.body), &list); err != nil {
		t.Fatalf("GET sessions of %s: %q: %v", sub, got.body, err)
	}
	return list
}

func sids(list []sessionJSON) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.SID)
	}
	slices.Sort(out)
	return out
}

func TestAdminAPIWithBoltHeldByCaddy(t *testing.T) {
	backend := issueBackend(t)
	inst := runCaddy(t, "bolt", refresherSite(backend, `
			store bolt `+filepath.Join(t.TempDir(), "sessions.db")+`
			refresh_ttl 1h`))
	base := inst.base()
	a1, r1 := signIn(t, base, "alice", firefoxLinux)
	a2, r2 := startAs(t, base, "alice")
	b1, _ := startAs(t, base, "bob")
	// One of alice's sessions has been refreshed once.
	got, c := postRefresh(t, base, r2)
	a2, r2 = wantRotated(t, "refresh", got, c)

	list := listSessions(t, inst, "alice")
	if want := sids([]sessionJSON{{SID: sidOf(t, a1)}, {SID: sidOf(t, a2)}}); !slices.Equal(sids(list), want) {
		t.Fatalf("alice's sessions %v, want %v", sids(list), want)
	}
	raw := adminDo(t, inst, "GET", "/session-gate/sessions?sub=alice").body
	for _, field := range []string{`"sid":`, `"sub":"alice"`, `"device":"Firefox on Linux"`, `"created":"`, `"last_seen":"`, `"refreshed":`, `"expires":"`} {
		if !strings.Contains(raw, field) {
			t.Errorf("session list %s lacks %s", raw, field)
		}
	}
	for _, s := range list {
		if s.Sub != "alice" || time.Since(s.Created) > time.Minute || time.Until(s.Expires) < 59*time.Minute {
			t.Errorf("session %+v: want sub alice, created just now, expiring in about 1h", s)
		}
		if refreshed := s.SID == sidOf(t, a2); refreshed != (s.Refreshed != nil) {
			t.Errorf("session %s: refreshed %v, want a time only for the refreshed session", s.SID, s.Refreshed)
		}
		if s.Refreshed != nil && !s.LastSeen.Equal(*s.Refreshed) || s.Refreshed == nil && !s.LastSeen.Equal(s.Created) {
			t.Errorf("session %s: last seen %v, want the refresh %v or else the start %v", s.SID, s.LastSeen, s.Refreshed, s.Created)
		}
		if first := s.SID == sidOf(t, a1); first != (s.Device == "Firefox on Linux") {
			t.Errorf("session %s: device %q, want Firefox on Linux only for the session signed in from Firefox", s.SID, s.Device)
		}
	}

	// One session: 204, its unexpired access token refused at once, its
	// refresh token dead; the other one goes on.
	if got := adminDo(t, inst, "DELETE", "/session-gate/sessions/"+sidOf(t, a1)); got.status != 204 {
		t.Fatalf("DELETE one session: %d %q, want 204", got.status, got.body)
	}
	if got := whoami(t, base, a1); got.status != 401 || got.body != `{"message":"try refresh token"}` {
		t.Errorf("revoked session's access token: %d %q, want 401 try refresh token", got.status, got.body)
	}
	got, c = postRefresh(t, base, r1)
	wantRefused(t, "revoked session's refresh", got, c)
	wantUser(t, "alice's other session", base, a2, "user=alice role=x")
	// Nothing left to revoke is a 404: the session just revoked, one never
	// made. The message quotes the sid as sent, not HTML-escaped.
	for _, sid := range []string{sidOf(t, a1), "00112233445566778899aabbccddeeff", "<x>"} {
		got := adminDo(t, inst, "DELETE", "/session-gate/sessions/"+url.PathEscape(sid))
		if want := `{"error":"no live session \"` + sid + `\": unknown, expired or already revoked"}`; got.status != 404 || strings.TrimSpace(got.body) != want {
			t.Errorf("DELETE session %s again or unknown: %d %q, want 404 %s", sid, got.status, got.body, want)
		}
	}
	if left := sids(listSessions(t, inst, "alice")); !slices.Equal(left, []string{sidOf(t, a2)}) {
		t.Errorf("alice's sessions after one revocation: %v", left)
	}

	// All of a user's sessions.
	got = adminDo(t, inst, "DELETE", "/session-gate/sessions?sub=alice")
	if got.status != 200 || strings.TrimSpace(got.body) != `{"revoked":1}` {
		t.Fatalf("DELETE alice's sessions: %d %q, want 200 {\"revoked\":1}", got.status, got.body)
	}
	if got := whoami(t, base, a2); got.status != 401 {
		t.Errorf("alice's last access token after revoking her sessions: %d, want 401", got.status)
	}
	got, c = postRefresh(t, base, r2)
	wantRefused(t, "alice's last refresh", got, c)
	if left := listSessions(t, inst, "alice"); len(left) != 0 {
		t.Errorf("alice's sessions after revoking all: %v", left)
	}
	wantUser(t, "bob, untouched", base, b1, "user=bob role=x")

	// A user whose name is markup reads as such in the JSON.
	startAs(t, base, "<user>")
	got = adminDo(t, inst, "GET", "/session-gate/sessions?sub="+url.QueryEscape("<user>"))
	if got.status != 200 || !strings.Contains(got.body, `"sub":"<user>"`) {
		t.Errorf("sessions of <user>: %d %q, want the sub unescaped", got.status, got.body)
	}

	for _, c := range []struct {
		method, uri string
		status      int
		word        string
	}{
		{"GET", "/session-gate/sessions", 400, "sub"},
		{"POST", "/session-gate/sessions?sub=alice", 405, "method"},
		{"GET", "/session-gate/sessions/" + sidOf(t, b1), 405, "method"},
	} {
		if got := adminDo(t, inst, c.method, c.uri); got.status != c.status || !strings.Contains(got.body, c.word) {
			t.Errorf("%s %s: %d %q, want %d saying %q", c.method, c.uri, got.status, got.body, c.status, c.word)
		}
	}
}

func TestSessionsCommand(t *testing.T) {
	backend := issueBackend(t)
	inst := runCaddy(t, "sessions", refresherSite(backend, `
			store bolt `+filepath.Join(t.TempDir(), "sessions.db")+`
			refresh_ttl 1h`))
	bob, _ := signIn(t, inst.base(), "bob", safariIPhone)
	other, _ := startAs(t, inst.base(), "bob")
	sessionsCLI := func(args ...string) cliResult {
		t.Helper()
		return runCLI(t, inst, "", append([]string{"session-gate", "sessions"}, args...)...)
	}

	// The admin address from --address, and from the running config.
	for _, where := range [][]string{{"--address", inst.adminAddr()}, {"--config", inst.config, "--adapter", "caddyfile"}} {
		res := sessionsCLI(append([]string{"list", "--sub", "bob"}, where...)...)
		if res.code != 0 || !strings.Contains(res.stdout, "SID") || !strings.Contains(res.stdout, "LAST SEEN") ||
			!strings.Contains(res.stdout, sidOf(t, bob)) || !strings.Contains(res.stdout, sidOf(t, other)) ||
			!regexp.MustCompile(sidOf(t, bob)+`\s+bob\s+Safari on iPhone\s`).MatchString(res.stdout) {
			t.Fatalf("sessions list %v: exit %d, stdout %q, stderr %q", where, res.code, res.stdout, res.stderr)
		}
	}
	res := sessionsCLI("revoke", "--sid", sidOf(t, bob), "--address", inst.adminAddr())
	if res.code != 0 || !strings.Contains(res.stdout, "revoked session "+sidOf(t, bob)) {
		t.Fatalf("sessions revoke --sid: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if got := whoami(t, inst.base(), bob); got.status != 401 {
		t.Errorf("revoked session's token: %d, want 401", got.status)
	}
	res = sessionsCLI("list", "--sub", "bob", "--json", "--address", inst.adminAddr())
	if res.code != 0 || !strings.Contains(res.stdout, sidOf(t, other)) || strings.Contains(res.stdout, sidOf(t, bob)) {
		t.Errorf("sessions list --json after revoking one: exit %d, stdout %q", res.code, res.stdout)
	}
	res = sessionsCLI("revoke", "--sub", "bob", "--address", inst.adminAddr())
	if res.code != 0 || !strings.Contains(res.stdout, "revoked 1 session(s) of bob") {
		t.Errorf("sessions revoke --sub: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = sessionsCLI("list", "--sub", "bob", "--address", inst.adminAddr())
	if res.code != 0 || !strings.Contains(res.stdout, "bob has no live sessions") {
		t.Errorf("sessions list after revoking all: exit %d, stdout %q", res.code, res.stdout)
	}

	// Errors are one plain line that says what to do, and exit 1. A sid
	// already revoked, or never made, is no live session.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke", "--address", inst.adminAddr()}, "exactly one of --sid"},
		{[]string{"revoke", "--sid", sidOf(t, bob), "--address", inst.adminAddr()},
			`no live session "` + sidOf(t, bob) + `": unknown, expired or already revoked (HTTP 404)`},
		{[]string{"revoke", "--sid", "<x>", "--address", inst.adminAddr()}, `no live session "<x>"`},
		{[]string{"list", "--address", inst.adminAddr()}, "--sub is required"},
		{[]string{"list", "--sub", "bob", "--address", "localhost:1"}, "is Caddy running"},
		{[]string{"list", "--sub", "bob", "--config", filepath.Join(t.TempDir(), "none.json")}, "reading the config"},
	} {
		wantErrorLine(t, "sessions "+strings.Join(c.args, " "), sessionsCLI(c.args...), c.want)
	}
}

// TestRevocationReachesAnotherCaddy: two Caddy processes on one Redis; a
// session revoked on A (through the admin API, and by a sign-out) is
// refused by B although its token has not expired: B heard of it through
// the store's feed. How long that takes is logged, not judged here (a
// loaded machine must not fail the test); the soak measures it under load.
func TestRevocationReachesAnotherCaddy(t *testing.T) {
	redis := redistest.Start(t)
	backend := issueBackend(t)
	body := refresherSite(backend, `
			store redis `+redis.URL()+`
			refresh_ttl 1h
			sessions_path `+sessionsPath)
	a := runCaddy(t, "A", body)
	b := runCaddy(t, "B", body)

	refusedOnB := func(what, access string, revoke func()) time.Duration {
		t.Helper()
		wantUser(t, what+": before, on B", b.base(), access, "user=alice role=x")
		began := time.Now()
		revoke()
		for {
			got := whoami(t, b.base(), access)
			if got.status == 401 && got.body == `{"message":"try refresh token"}` {
				return time.Since(began)
			}
			if got.status != 200 {
				t.Fatalf("%s: B answered %d %q while the revocation travelled", what, got.status, got.body)
			}
			if time.Since(began) > 15*time.Second {
				t.Fatalf("%s: B still accepts the revoked session's token after %v", what, time.Since(began))
			}
			time.Sleep(5 * time.Millisecond) // polling, with a deadline
		}
	}

	access, _ := mustStart(t, a.base())
	delay := refusedOnB("admin revocation", access, func() {
		if got := adminDo(t, a, "DELETE", "/session-gate/sessions/"+sidOf(t, access)); got.status != 204 {
			t.Fatalf("DELETE on A: %d %q", got.status, got.body)
		}
	})
	t.Logf("admin revocation on A refused by B after %v", delay.Round(time.Microsecond))

	access, _ = mustStart(t, a.base())
	delay = refusedOnB("sign-out", access, func() {
		if got := do(t, withCookie(asAPI(newRequest(t, "POST", a.base()+"/signout", nil)), "sAccessToken", access)); got.status != 200 {
			t.Fatalf("sign-out on A: %d %q", got.status, got.body)
		}
	})
	t.Logf("sign-out on A refused by B after %v", delay.Round(time.Microsecond))

	// Your devices: signed in from Firefox on A and from an iPhone on B, both
	// listed on B from the shared store; the iPhone signed out from
	// Firefox on A is refused by B.
	firefox, _ := signIn(t, a.base(), "alice", firefoxLinux)
	iphone, _ := signIn(t, b.base(), "alice", safariIPhone)
	if got := devicesOf(listOwn(t, b.base(), firefox)); !slices.Equal(got, []string{"Safari on iPhone/false", "Firefox on Linux/true"}) {
		t.Fatalf("alice's devices listed on B: %v", got)
	}
	delay = refusedOnB("your devices", iphone, func() {
		if got, _ := deleteOwn(t, a.base(), firefox, sidOf(t, iphone)); got.status != 204 {
			t.Fatalf("DELETE of the iPhone's session on A: %d %q", got.status, got.body)
		}
	})
	t.Logf("the iPhone signed out from Firefox on A refused by B after %v", delay.Round(time.Microsecond))
}

// TestAdminAPIAcrossStores: two gates on one bolt file and a third on a
// memory store, in one config; a user's sessions are listed and counted once.
func TestAdminAPIAcrossStores(t *testing.T) {
	backend := issueBackend(t)
	db := filepath.Join(t.TempDir(), "sessions.db")
	gate := func(login, store string) string {
		return `
		session_gate {
			secret "` + testSecret + `"
			login_url ` + login + `
			refresher {
				store ` + store + `
			}
		}
		reverse_proxy ` + login + ` ` + backend + `
`
	}
	inst := runCaddy(t, "stores", `
	handle /m/* {`+gate("/m/login", "memory")+`	}
	handle /b/* {`+gate("/b/login", "bolt "+db)+`	}
	handle {`+gate("/login", "bolt "+db)+`	}
`)
	var want []string
	for _, login := range []string{"/login", "/b/login", "/m/login"} {
		access, _ := startAs(t, inst.base()+strings.TrimSuffix(login, "/login"), "alice")
		want = append(want, sidOf(t, access))
	}
	slices.Sort(want)
	if got := sids(listSessions(t, inst, "alice")); !slices.Equal(got, want) {
		t.Fatalf("alice's sessions %v, want each once: %v", got, want)
	}
	got := adminDo(t, inst, "DELETE", "/session-gate/sessions?sub=alice")
	if got.status != 200 || strings.TrimSpace(got.body) != `{"revoked":3}` {
		t.Fatalf("DELETE alice's sessions: %d %q, want {\"revoked\":3}", got.status, got.body)
	}
}

// The admin API asks each store once: gates sharing a store (and the old and
// new config during a reload) register the same key.
func TestOperatedStoresOnePerStore(t *testing.T) {
	// The in-process Caddy may still run an earlier test's config: set its
	// refreshers aside.
	operated.Lock()
	running := operated.m
	operated.m = map[*refresher]struct{}{}
	operated.Unlock()
	defer func() {
		operated.Lock()
		operated.m = running
		operated.Unlock()
	}()
	if _, err := operatedStores(); err == nil {
		t.Fatal("no refresher registered, yet no error")
	}
	a, b, c := &refresher{storeKey: "bolt /x"}, &refresher{storeKey: "bolt /x"}, &refresher{storeKey: "memory 0x1"}
	for _, rf := range []*refresher{a, b, c} {
		registerOperated(rf)
		defer unregisterOperated(rf)
	}
	got, err := operatedStores()
	if err != nil || len(got) != 2 || got[0].storeKey != "bolt /x" || got[1].storeKey != "memory 0x1" {
		t.Fatalf("operatedStores() = %v, %v; want one refresher for bolt /x and one for memory", got, err)
	}
	unregisterOperated(a)
	if got, _ := operatedStores(); len(got) != 2 || got[0] != b {
		t.Fatalf("after one gate's cleanup: %v, want b to stand for bolt /x", got)
	}
}
