package sessiongate

// Self-service sessions, "your devices" (docs/behaviour.md): sessions_path
// through real Caddy, its JSON, its page and its revocations.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// User-Agent headers of real browsers, for sign-ins that name their device.
const (
	firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// signIn starts a session for sub from a browser that sends userAgent ("":
// none at all) and returns its tokens.
func signIn(t *testing.T, base, sub, userAgent string) (access, refresh string) {
	t.Helper()
	req := asNavigation(newRequest(t, "GET", base+"/login", nil))
	req.Header["X-Test-Issue"] = []string{`{"sub":"` + sub + `","claims":{"role":"x"}}`}
	req.Header.Set("User-Agent", userAgent) // "" sends none
	got := do(t, req)
	c := cookieMap(t, got.header)
	if got.status != 200 || c["sAccessToken"] == nil || c["sRefreshToken"] == nil {
		t.Fatalf("sign-in of %s from %q: %d %q", sub, userAgent, got.status, got.body)
	}
	return c["sAccessToken"].Value, c["sRefreshToken"].Value
}

const sessionsPath = "/account/sessions"

// devicesSite is a site whose refresher (memory store) serves sessions_path.
func devicesSite(t *testing.T) string {
	t.Helper()
	return site(t, refresherSite(issueBackend(t), `
			store memory
			refresh_ttl 1h
			sessions_path `+sessionsPath))
}

// ownSessions is the JSON answer of sessions_path.
type ownSessions struct {
	Sessions []ownSessionJSON `json:"sessions"`
}

// listOwn GETs sessions_path as an API call with access.
func listOwn(t *testing.T, base, access string) ownSessions {
	t.Helper()
	got := do(t, withCookie(asAPI(newRequest(t, "GET", base+sessionsPath, nil)), "sAccessToken", access))
	if got.status != 200 || got.header.Get("Content-Type") != "application/json" || got.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET %s: %d %q (%s, %s)", sessionsPath, got.status, got.body, got.header.Get("Content-Type"), got.header.Get("Cache-Control"))
	}
	var out ownSessions
	if err := json.Unmarshal([]byte(got.body), &out); err != nil {
		t.Fatalf("GET %s: %q: %v", sessionsPath, got.body, err)
	}
	return out
}

// devicesOf is "<device>/<current>" of each listed session, in order.
func devicesOf(list ownSessions) []string {
	var out []string
	for _, s := range list.Sessions {
		out = append(out, fmt.Sprintf("%s/%v", s.Device, s.Current))
	}
	return out
}

// postOwn POSTs to sessions_path: body is form fields (a form navigation)
// or, starting with "{", JSON (a fetch).
func postOwn(t *testing.T, base, access, body string, header ...string) (reply, map[string]*http.Cookie) {
	t.Helper()
	req := newRequest(t, "POST", base+sessionsPath, strings.NewReader(body))
	if strings.HasPrefix(body, "{") {
		asAPI(req).Header.Set("Content-Type", "application/json")
	} else {
		asNavigation(req).Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	got := do(t, withCookie(req, "sAccessToken", access))
	return got, cookieMap(t, got.header)
}

// deleteOwn sends DELETE <sessions_path>/<sid> as an API call.
func deleteOwn(t *testing.T, base, access, sid string) (reply, map[string]*http.Cookie) {
	t.Helper()
	got := do(t, withCookie(asAPI(newRequest(t, "DELETE", base+sessionsPath+"/"+sid, nil)), "sAccessToken", access))
	return got, cookieMap(t, got.header)
}

// wantSignedOut checks that a session's access token is refused at once
// (as expired: the revoked set of this Caddy is written before the answer)
// and that its refresh token no longer works.
func wantSignedOut(t *testing.T, what, base, access, refresh string) {
	t.Helper()
	if got := whoami(t, base, access); got.status != 401 || got.body != `{"message":"try refresh token"}` {
		t.Errorf("%s: its access token gives %d %q, want 401 try refresh token", what, got.status, got.body)
	}
	got, c := postRefresh(t, base, refresh)
	wantRefused(t, what+": its refresh", got, c)
}

func TestSessionsPath(t *testing.T) {
	base := devicesSite(t)
	firefox, firefoxRefresh := signIn(t, base, "alice", firefoxLinux)
	iphone, iphoneRefresh := signIn(t, base, "alice", safariIPhone)
	bob, _ := signIn(t, base, "bob", firefoxLinux)

	// Listed newest first, with their devices, the asking one current.
	list := listOwn(t, base, firefox)
	if got, want := devicesOf(list), []string{"Safari on iPhone/false", "Firefox on Linux/true"}; !slices.Equal(got, want) {
		t.Fatalf("alice's sessions from Firefox: %v, want %v", got, want)
	}
	if list.Sessions[0].SID != sidOf(t, iphone) || list.Sessions[1].SID != sidOf(t, firefox) {
		t.Fatalf("sids %+v, want the iPhone's then Firefox's", list)
	}
	for _, s := range list.Sessions {
		if s.Created.IsZero() || !s.LastSeen.Equal(s.Created) {
			t.Errorf("session %s: created %v, last seen %v; want a start, and last seen then", s.SID, s.Created, s.LastSeen)
		}
	}
	if got := devicesOf(listOwn(t, base, iphone)); !slices.Equal(got, []string{"Safari on iPhone/true", "Firefox on Linux/false"}) {
		t.Errorf("alice's sessions from the iPhone: %v", got)
	}
	// A refresh moves last_seen; the listing knows the session by the
	// access token's sid, whichever token of the session asks.
	got, c := postRefresh(t, base, firefoxRefresh)
	firefox, firefoxRefresh = wantRotated(t, "Firefox's refresh", got, c)
	if s := listOwn(t, base, firefox).Sessions[1]; !s.Current || !s.LastSeen.After(s.Created) {
		t.Errorf("after a refresh: %+v, want current and last seen after created", s)
	}

	// Never another person's: bob's sid is a 404 like an unknown one, and
	// bob goes on.
	for _, sid := range []string{sidOf(t, bob), "00112233445566778899aabbccddeeff"} {
		if got, _ := deleteOwn(t, base, firefox, sid); got.status != 404 || got.body != `{"message":"no such session"}` {
			t.Errorf("DELETE of %s by alice: %d %q, want 404", sid, got.status, got.body)
		}
		if got, _ := postOwn(t, base, firefox, `{"sid":"`+sid+`"}`); got.status != 404 {
			t.Errorf("POST sid=%s by alice: %d %q, want 404", sid, got.status, got.body)
		}
	}
	wantUser(t, "bob after alice tried his sid", base, bob, "user=bob role=x")

	// A cross-site POST or DELETE is refused before anything is looked at.
	for _, h := range [][]string{
		{"Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		if got, _ := postOwn(t, base, firefox, "sid="+sidOf(t, iphone), h...); got.status != 403 {
			t.Errorf("POST with %s: %s: %d %q, want 403", h[0], h[1], got.status, got.body)
		}
		req := withCookie(asAPI(newRequest(t, "DELETE", base+sessionsPath+"/"+sidOf(t, iphone), nil)), "sAccessToken", firefox)
		req.Header.Set(h[0], h[1])
		if got := do(t, req); got.status != 403 {
			t.Errorf("DELETE with %s: %s: %d %q, want 403", h[0], h[1], got.status, got.body)
		}
	}
	wantUser(t, "the iPhone after cross-site attempts", base, iphone, "user=alice role=x")

	// The iPhone signed out from Firefox (JSON): refused at once.
	got, _ = postOwn(t, base, firefox, `{"sid":"`+sidOf(t, iphone)+`"}`)
	if got.status != 200 || got.body != `{"revoked":1}` {
		t.Fatalf("POST {sid: the iPhone's}: %d %q, want 200 {\"revoked\":1}", got.status, got.body)
	}
	wantSignedOut(t, "the iPhone", base, iphone, iphoneRefresh)
	if got := devicesOf(listOwn(t, base, firefox)); !slices.Equal(got, []string{"Firefox on Linux/true"}) {
		t.Errorf("after signing out the iPhone: %v", got)
	}
	if got, _ := deleteOwn(t, base, firefox, sidOf(t, iphone)); got.status != 404 {
		t.Errorf("DELETE of a session already signed out: %d, want 404", got.status)
	}

	// DELETE one: 204, refused at once; this session's cookies untouched.
	third, thirdRefresh := signIn(t, base, "alice", safariIPhone)
	got, c = deleteOwn(t, base, firefox, sidOf(t, third))
	if got.status != 204 || len(c) != 0 {
		t.Fatalf("DELETE of another session: %d %q cookies %q, want 204 and none", got.status, got.body, got.header.Values("Set-Cookie"))
	}
	wantSignedOut(t, "the session deleted", base, third, thirdRefresh)

	// Sign out all other devices, as the page's form does: 303 back to the
	// page, which says how many.
	a1, r1 := signIn(t, base, "alice", safariIPhone)
	a2, r2 := signIn(t, base, "alice", "")
	got, c = postOwn(t, base, firefox, "others=1")
	if got.status != 303 || got.header.Get("Location") != sessionsPath+"?signed_out=2" || len(c) != 0 {
		t.Fatalf("form others=1: %d Location %q cookies %q, want 303 to the page, none cleared", got.status, got.header.Get("Location"), got.header.Values("Set-Cookie"))
	}
	wantSignedOut(t, "another device", base, a1, r1)
	wantSignedOut(t, "a device without a User-Agent", base, a2, r2)
	wantUser(t, "Firefox after signing out the others", base, firefox, "user=alice role=x")
	got, _ = postOwn(t, base, firefox, `{"others":true}`)
	if got.status != 200 || got.body != `{"revoked":0}` {
		t.Errorf("JSON others with none left: %d %q, want {\"revoked\":0}", got.status, got.body)
	}

	// Signing out the current session here is a sign-out: cookies cleared,
	// a form goes to login, the session is over.
	got, c = postOwn(t, base, firefox, "sid="+sidOf(t, firefox))
	if got.status != 303 || got.header.Get("Location") != "/login" {
		t.Fatalf("form sid=<current>: %d Location %q, want 303 to /login", got.status, got.header.Get("Location"))
	}
	wantCleared(t, "signing out the current session", c)
	wantSignedOut(t, "the current session", base, firefox, firefoxRefresh)

	// DELETE of the current session: 204 with the cookies cleared.
	cur, curRefresh := signIn(t, base, "alice", firefoxLinux)
	got, c = deleteOwn(t, base, cur, sidOf(t, cur))
	if got.status != 204 {
		t.Fatalf("DELETE of the current session: %d %q", got.status, got.body)
	}
	wantCleared(t, "DELETE of the current session", c)
	wantSignedOut(t, "the current session deleted", base, cur, curRefresh)
	wantUser(t, "bob at the end", base, bob, "user=bob role=x")
}

// TestSessionsPathAnswers: what is not a valid session, a method, a
// request, gets the answer it would anywhere, and the site keeps the
// paths under sessions_path that are not a session.
func TestSessionsPathAnswers(t *testing.T) {
	base := devicesSite(t)
	alice, _ := signIn(t, base, "alice", firefoxLinux)
	expired := token(t, map[string]any{"sub": "alice", "sid": sidOf(t, alice), "exp": 1})

	for _, c := range []struct {
		what, method, path, access string
		nav                        bool
		body, contentType          string
		status                     int
		want                       string // in the body, or the Location
	}{
		{"no token, API", "GET", sessionsPath, "", false, "", "", 401, `{"message":"unauthorised"}`},
		{"no token, navigation", "GET", sessionsPath, "", true, "", "", 302, "/login?redirectToPath=%2Faccount%2Fsessions"},
		{"expired, API", "GET", sessionsPath, expired, false, "", "", 401, `{"message":"try refresh token"}`},
		{"expired, navigation", "GET", sessionsPath, expired, true, "", "", 401, "Restoring your session"},
		{"expired, POST", "POST", sessionsPath, expired, false, `{"others":true}`, "application/json", 401, `{"message":"try refresh token"}`},
		{"PUT", "PUT", sessionsPath, alice, false, "", "", 405, `{"message":"method not allowed"}`},
		{"DELETE the list", "DELETE", sessionsPath, alice, false, "", "", 405, "method not allowed"},
		{"GET one session", "GET", sessionsPath + "/" + sidOf(t, alice), alice, false, "", "", 405, "method not allowed"},
		{"POST naming nothing", "POST", sessionsPath, alice, false, `{}`, "application/json", 400, "sid=<session id> or others=1"},
		{"POST naming both", "POST", sessionsPath, alice, false, "sid=x&others=1", "application/x-www-form-urlencoded", 400, "sid=<session id> or others=1"},
		{"POST as text", "POST", sessionsPath, alice, false, "others=1", "text/plain", 400, "sid=<session id> or others=1"},
		{"POST too large", "POST", sessionsPath, alice, false, `{"sid":"` + strings.Repeat("a", 20000) + `"}`, "application/json", 400, "sid=<session id> or others=1"},
		{"under the path, not a session", "GET", sessionsPath + "/settings", alice, false, "", "", 200, ""},
	} {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req := newRequest(t, c.method, base+c.path, body)
		if c.nav {
			asNavigation(req)
		} else {
			asAPI(req)
		}
		if c.contentType != "" {
			req.Header.Set("Content-Type", c.contentType)
		}
		if c.access != "" {
			withCookie(req, "sAccessToken", c.access)
		}
		got := do(t, req)
		if got.status != c.status || !strings.Contains(got.body, c.want) && got.header.Get("Location") != c.want {
			t.Errorf("%s: %d %q Location %q, want %d with %q", c.what, got.status, got.body, got.header.Get("Location"), c.status, c.want)
		}
		if got.status == 405 && got.header.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", c.what)
		}
	}
	wantUser(t, "alice after all that", base, alice, "user=alice role=x")
}

// TestDevicesPage: the page a navigation gets, its headers, its rows and
// its forms.
func TestDevicesPage(t *testing.T) {
	base := devicesSite(t)
	firefox, _ := signIn(t, base, "alice", firefoxLinux)
	signIn(t, base, "alice", safariIPhone)
	signIn(t, base, "alice", "")
	page := func(query string) reply {
		t.Helper()
		got := do(t, withCookie(asNavigation(newRequest(t, "GET", base+sessionsPath+query, nil)), "sAccessToken", firefox))
		if got.status != 200 {
			t.Fatalf("the page: %d %q", got.status, got.body)
		}
		return got
	}
	got := page("")
	h := got.header
	nonce := regexp.MustCompile(`<style nonce="([A-Za-z0-9_-]{24,})">`).FindStringSubmatch(got.body)
	if nonce == nil {
		t.Fatalf("no style nonce in %q", got.body)
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'nonce-" + nonce[1] + "'", "script-src 'nonce-" + nonce[1] + "'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("page headers %v", h)
	}
	if again := page(""); strings.Contains(again.body, nonce[1]) {
		t.Error("two answers share a nonce")
	}
	if strings.Contains(got.body, "http://") || strings.Contains(got.body, "https://") || strings.Contains(got.body, " src=") {
		t.Errorf("the page loads something from elsewhere: %q", got.body)
	}
	// Newest first; unknown device named so; this device marked; a sign-out
	// form per device, one for all the others.
	names := regexp.MustCompile(`<div class="name">([^<]*)(<span class="tag">This device</span>)?</div>`).FindAllStringSubmatch(got.body, -1)
	var rows []string
	for _, n := range names {
		rows = append(rows, n[1]+map[bool]string{true: " (this device)"}[n[2] != ""])
	}
	if want := []string{"Unknown device", "Safari on iPhone", "Firefox on Linux (this device)"}; !slices.Equal(rows, want) {
		t.Errorf("rows %v, want %v", rows, want)
	}
	if n := strings.Count(got.body, `<form method="post" action="`+sessionsPath+`"><input type="hidden" name="sid" value="`); n != 3 {
		t.Errorf("%d sign-out forms, want 3", n)
	}
	if !strings.Contains(got.body, `<input type="hidden" name="sid" value="`+sidOf(t, firefox)+`">`) ||
		!strings.Contains(got.body, `name="others" value="1"><button class="btn p" id="others" type="submit">Sign out all other devices</button>`) {
		t.Errorf("page lacks this device's form or the others' form: %q", got.body)
	}
	if strings.Contains(got.body, `id="done"`) {
		t.Error("the page says something was signed out before anything was")
	}
	if done := page("?signed_out=2"); !strings.Contains(done.body, "Signed out of 2 devices.") {
		t.Errorf("after a form post: %q, want it to say how many", done.body)
	}
	if odd := page("?signed_out=<b>"); strings.Contains(odd.body, "<b>") || strings.Contains(odd.body, `id="done"`) {
		t.Error("the page repeats what the query says")
	}
	if head := do(t, withCookie(asNavigation(newRequest(t, "HEAD", base+sessionsPath, nil)), "sAccessToken", firefox)); head.status != 200 || head.body != "" || head.header.Get("Content-Security-Policy") == "" {
		t.Errorf("HEAD: %d %q %v", head.status, head.body, head.header)
	}
}

// TestSessionsPathConfig: sessions_path is checked where it is written.
func TestSessionsPathConfig(t *testing.T) {
	for _, c := range []struct{ settings, want string }{
		{"sessions_path account", `session_gate: refresher: sessions_path: "account" must be a path starting with /`},
		{"sessions_path /account/", `session_gate: refresher: sessions_path: "/account/" must not end with /`},
		{"sessions_path /refreshsession", "sessions_path and refresh_path must differ (both are /refreshsession)"},
		{"sessions_path /signout", "sessions_path and signout_path must differ (both are /signout)"},
	} {
		text := gateSite("secret " + testSecret + "\nrefresher {\nstore memory\n" + c.settings + "\n}")
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "site.Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), "site.Caddyfile:") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: adapting gives %v; want an error naming site.Caddyfile and saying %q", c.settings, err, c.want)
		}
	}
	gate := func(refresher string) string {
		return `{"handler":"session_gate","secrets":["` + testSecret + `"],"refresher":{"store":{"type":"memory"},` + refresher + `}}`
	}
	wantConfigError(t, "JSON sessions_path", validateJSON(t, gate(`"sessions_path":"account"`)), `sessions_path: "account" must be a path starting with /`)
	wantConfigError(t, "JSON sessions_path", validateJSON(t, gate(`"sessions_path":"/signout"`)), "sessions_path and signout_path must differ")
	if err := validateJSON(t, gate(`"sessions_path":"/account/sessions"`)); err != nil {
		t.Errorf("JSON sessions_path /account/sessions: %v", err)
	}
}
