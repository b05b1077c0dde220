package sessiongate

// End-to-end tests: a real headless Chromium (through internal/browsertest)
// against real Caddy (through site) running the gate, for the flows of
// issues #3 and #4: refresh through refresh_upstream, refusal, a refresh that
// sets no cookie, tabs expiring together, a form POST, no JavaScript, and the
// internal refresher from login to sign-out.

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/session-gate/session_gate/internal/browsertest"
)

// authBackend is a refresh_upstream: it records every call and answers with
// its status; with setCookie, a 2xx answer carries a fresh, valid access
// token cookie (sub alice, signed with testSecret).
type authBackend struct {
	*httptest.Server
	status    int
	setCookie bool
	delay     time.Duration // before answering

	mu    sync.Mutex
	calls []backendCall
}

type backendCall struct {
	method, path, contentType, body string
	refreshCookie                   string // the sRefreshToken the browser sent
}

func newAuthBackend(t *testing.T, status int, setCookie bool) *authBackend {
	t.Helper()
	b := &authBackend{status: status, setCookie: setCookie}
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *authBackend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := backendCall{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), body: string(body)}
	if rc, err := r.Cookie("sRefreshToken"); err == nil {
		c.refreshCookie = rc.Value
	}
	b.mu.Lock()
	b.calls = append(b.calls, c)
	b.mu.Unlock()
	select {
	case <-time.After(b.delay):
	case <-r.Context().Done():
		return
	}
	if b.setCookie && b.status >= 200 && b.status < 300 {
		fresh, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(testSecret))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "sAccessToken", Value: fresh, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(b.status)
	_, _ = io.WriteString(w, `{"status":"from the auth backend"}`)
}

func (b *authBackend) recorded() []backendCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// loginHandle serves a public login page at /login whose #msg says "Please
// sign in".
const loginHandle = `
	handle /login {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>login</title><h1 id="msg">Please sign in</h1>
			HTML 200
	}
`

// upstreamSite boots Caddy with a gate that refreshes through auth and
// protects a page whose #msg says "protected content for <sub>"; more is
// added to the site block.
func upstreamSite(t *testing.T, auth *authBackend, more string) string {
	t.Helper()
	return site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresh_upstream `+strings.TrimPrefix(auth.URL, "http://")+`
	}
`+loginHandle+more+`
	handle {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>content</title><p id="msg">protected content for {http.auth.user.id}</p>
			HTML 200
	}
`)
}

// where is a JS expression: the tab's path, query and fragment, a space, and
// the text of the page's #msg (our pages) or #t (the interstitial's heading).
const where = `location.pathname+location.search+location.hash+" "+` +
	`((document.getElementById("msg")||document.getElementById("t")||{}).textContent||"")`

// setCookie puts a cookie for base into the browser, as the site would have
// set it earlier (HttpOnly, SameSite=Lax).
func setCookie(t *testing.T, tab context.Context, base, name, value, path string) {
	t.Helper()
	httpOnly := true
	if _, err := chromedp.Call(tab, network.SetCookie, network.SetCookieParams{
		URL: base, Name: name, Value: value, Path: path, HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax,
	}); err != nil {
		t.Fatalf("set cookie %s: %v", name, err)
	}
}

// cookies returns the browser's cookies for the site (the refresh cookie's
// path included) by name.
func cookies(t *testing.T, tab context.Context, base string) map[string]string {
	t.Helper()
	res, err := chromedp.Call(tab, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/", base + DefaultRefreshPath}})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, c := range res.Cookies {
		m[c.Name] = c.Value
	}
	return m
}

// expireSession gives the browser an expired access token and a refresh
// token, as a user coming back after a while has, and returns the access
// token.
func expireSession(t *testing.T, tab context.Context, base, refreshToken string) string {
	t.Helper()
	expired := token(t, expiredClaims())
	setCookie(t, tab, base, "sAccessToken", expired, "/")
	setCookie(t, tab, base, "sRefreshToken", refreshToken, DefaultRefreshPath)
	return expired
}

// checkOneRefresh asserts that the auth backend got exactly one refresh POST,
// with the browser's refresh cookie. It is called once the page the
// interstitial led to has loaded: the interstitial, whose script is the only
// one that refreshes, is gone by then, so no later refresh can come.
func checkOneRefresh(t *testing.T, auth *authBackend, refreshToken string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(auth.recorded()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
	calls := auth.recorded()
	if len(calls) != 1 {
		t.Fatalf("the auth backend got %d calls, want 1: %+v", len(calls), calls)
	}
	if c := calls[0]; c.method != http.MethodPost || c.path != DefaultRefreshPath || c.refreshCookie != refreshToken {
		t.Errorf("the auth backend got %s %s with sRefreshToken %q, want POST %s with %q", c.method, c.path, c.refreshCookie, DefaultRefreshPath, refreshToken)
	}
}

// checkRequests asserts how many requests of each kind the tab made. The
// browser reports a response a moment after the page shows it, so each count
// is first waited for (polling, with a deadline), then compared exactly.
func checkRequests(t *testing.T, reqs *browsertest.Requests, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for prefix, n := range want {
		for reqs.Count(prefix) < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for prefix, n := range want {
		if got := reqs.Count(prefix); got != n {
			t.Errorf("%d × %q, want %d; the tab's requests: %q", got, prefix, n, reqs.List())
		}
	}
}

// TestBrowser runs every scenario in one Chromium (starting it takes seconds
// here), each in a profile of its own against a Caddy config of its own.
func TestBrowser(t *testing.T) {
	browser := browsertest.Start(t)
	for _, c := range []struct {
		name string
		run  func(*testing.T, context.Context)
	}{
		{"ExpiredTokenRefreshesThroughUpstream", testExpiredTokenRefreshesThroughUpstream},
		{"RefreshRefusedGoesToLogin", testRefreshRefusedGoesToLogin},
		{"RefreshWithoutCookieDoesNotLoop", testRefreshWithoutCookieDoesNotLoop},
		{"TabsExpiringTogetherRefreshOnce", testTabsExpiringTogetherRefreshOnce},
		{"FormPostSurvivesRefresh", testFormPostSurvivesRefresh},
		{"NoScriptFormRefreshes", testNoScriptFormRefreshes},
		{"InternalRefresherLoginToSignout", testInternalRefresherLoginToSignout},
		{"SignOutEverywhere", testSignOutEverywhere},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, browser) })
	}
}

// Issue #3, 1: an expired access token with a working refresh ends on the
// page that was asked for, fragment included, after one refresh.
func testExpiredTokenRefreshesThroughUpstream(t *testing.T, browser context.Context) {
	auth := newAuthBackend(t, http.StatusOK, true)
	base := upstreamSite(t, auth, "")
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	expired := expireSession(t, tab, base, "rt-1")
	reqs := browsertest.RecordRequests(t, tab)

	browsertest.Open(t, tab, base+"/docs/page?x=1#top")
	browsertest.WaitJS(t, tab, where, "/docs/page?x=1#top protected content for alice")
	checkOneRefresh(t, auth, "rt-1")
	checkRequests(t, reqs, map[string]int{
		"GET /docs/page?x=1 401":   1, // the interstitial
		"POST /refreshsession 200": 1,
		"GET /docs/page?x=1 200":   1,
	})
	if c := cookies(t, tab, base)["sAccessToken"]; c == "" || c == expired {
		t.Errorf("the browser kept no new access token from the backend's answer")
	}
}

// Issue #3, 2: a refresh the backend refuses ends at login, with the way back.
func testRefreshRefusedGoesToLogin(t *testing.T, browser context.Context) {
	auth := newAuthBackend(t, http.StatusUnauthorized, false)
	base := upstreamSite(t, auth, "")
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	expireSession(t, tab, base, "rt-revoked")

	browsertest.Open(t, tab, base+"/docs/page?x=1")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Fdocs%2Fpage%3Fx%3D1 Please sign in")
	checkOneRefresh(t, auth, "rt-revoked")
}

// Issue #3, 3: a refresh that answers 200 but sets no cookie brings the
// interstitial back; the page must then stop (login, or the "sign in again"
// view), never refresh in a loop.
func testRefreshWithoutCookieDoesNotLoop(t *testing.T, browser context.Context) {
	auth := newAuthBackend(t, http.StatusOK, false)
	base := upstreamSite(t, auth, "")
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	expireSession(t, tab, base, "rt-1")
	reqs := browsertest.RecordRequests(t, tab)

	browsertest.Open(t, tab, base+"/docs/page?x=1")
	stopped := `(function(){var w=` + where + `;` +
		`return w=="/login?redirectToPath=%2Fdocs%2Fpage%3Fx%3D1 Please sign in"||w=="/docs/page?x=1 Please sign in again"?"stopped":w})()`
	browsertest.WaitJS(t, tab, stopped, "stopped")
	browsertest.AdvanceTime(t, tab, 5*time.Second) // a loop would show here
	browsertest.WaitJS(t, tab, stopped, "stopped")
	checkOneRefresh(t, auth, "rt-1")
	if n := reqs.Count("GET /docs/page?x=1 401"); n > 2 {
		t.Errorf("the interstitial was loaded %d times, want at most 2: %q", n, reqs.List())
	}
	if w, err := chromedp.Run(tab, chromedp.Evaluate[string](where)); err == nil && strings.HasSuffix(w, "Please sign in again") {
		browsertest.WaitJS(t, tab, `document.getElementById("signin").href`, base+"/login?redirectToPath=%2Fdocs%2Fpage%3Fx%3D1")
	}
}

// Issue #3, 4: three tabs whose token expires together refresh once.
func testTabsExpiringTogetherRefreshOnce(t *testing.T, browser context.Context) {
	auth := newAuthBackend(t, http.StatusOK, true)
	auth.delay = 800 * time.Millisecond // every tab is on the interstitial before the refresh answers
	base := upstreamSite(t, auth, "")
	profile := browsertest.NewProfile(t, browser)
	const n = 3
	var tabs []context.Context
	var logs []*browsertest.Requests
	for range n {
		tab := browsertest.NewTab(t, profile)
		tabs = append(tabs, tab)
		logs = append(logs, browsertest.RecordRequests(t, tab))
	}
	expireSession(t, tabs[0], base, "rt-1") // one cookie jar for the whole browser

	for i, tab := range tabs {
		browsertest.Open(t, tab, fmt.Sprintf("%s/docs/page?tab=%d", base, i))
	}
	for i, tab := range tabs {
		browsertest.WaitJS(t, tab, where, fmt.Sprintf("/docs/page?tab=%d protected content for alice", i))
	}
	checkOneRefresh(t, auth, "rt-1")
	for i, reqs := range logs {
		checkRequests(t, reqs, map[string]int{fmt.Sprintf("GET /docs/page?tab=%d 401", i): 1})
	}
}

// formApp is the site behind the gate for the form test: /form is a form
// that POSTs to /submit?draft=1, which records what it receives.
type formApp struct {
	*httptest.Server
	mu    sync.Mutex
	posts []formPost
}

type formPost struct {
	target, contentType, user string
	fields                    [][2]string
}

// formFields are what the form sends, in order: a repeated name, markup and
// quotes, a textarea with a line break (sent as CRLF), the submit button.
var formFields = [][2]string{
	{"title", `Q3 report & "notes" <b>`},
	{"tag", "a"},
	{"tag", "b"},
	{"body", "line1\r\nline2 ✓"},
	{"action", "save"},
}

func newFormApp(t *testing.T) *formApp {
	t.Helper()
	a := &formApp{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>form</title><h1 id="msg">Edit</h1>
<form method="post" action="/submit?draft=1">
<input name="title" value="%s">
<input type="checkbox" name="tag" value="a" checked><input type="checkbox" name="tag" value="b" checked>
<textarea name="body">%s</textarea>
<button id="send" name="action" value="save">Save</button>
</form>`, html.EscapeString(formFields[0][1]), "line1\nline2 ✓")
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p := formPost{target: r.URL.RequestURI(), contentType: r.Header.Get("Content-Type"), user: r.Header.Get("X-User")}
		for pair := range strings.SplitSeq(string(body), "&") {
			k, v, _ := strings.Cut(pair, "=")
			k, _ = url.QueryUnescape(k)
			v, _ = url.QueryUnescape(v)
			p.fields = append(p.fields, [2]string{k, v})
		}
		a.mu.Lock()
		a.posts = append(a.posts, p)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>saved</title><p id="msg">saved %d fields for %s</p>`, len(p.fields), html.EscapeString(p.user))
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// Issue #3, 5: a form POST that meets an expired token reaches the site,
// fields intact, after the refresh.
func testFormPostSurvivesRefresh(t *testing.T, browser context.Context) {
	auth := newAuthBackend(t, http.StatusOK, true)
	app := newFormApp(t)
	base := upstreamSite(t, auth, `
	@app path /form /submit
	handle @app {
		reverse_proxy `+strings.TrimPrefix(app.URL, "http://")+` {
			header_up X-User {http.auth.user.id}
		}
	}
`)
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	// The form is loaded while the session is good; the token expires while
	// the user fills it in.
	setCookie(t, tab, base, "sAccessToken", token(t, validClaims()), "/")
	setCookie(t, tab, base, "sRefreshToken", "rt-1", DefaultRefreshPath)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/form")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, tab, where, "/form Edit")
	setCookie(t, tab, base, "sAccessToken", token(t, expiredClaims()), "/")
	reqs := browsertest.RecordRequests(t, tab)
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("send"))); err != nil {
		t.Fatal(err)
	}

	browsertest.WaitJS(t, tab, where, fmt.Sprintf("/submit?draft=1 saved %d fields for alice", len(formFields)))
	checkOneRefresh(t, auth, "rt-1")
	checkRequests(t, reqs, map[string]int{
		"POST /submit?draft=1 401": 1, // the interstitial, holding the fields
		"POST /submit?draft=1 200": 1,
	})
	app.mu.Lock()
	posts := slices.Clone(app.posts)
	app.mu.Unlock()
	if len(posts) != 1 {
		t.Fatalf("the site got %d POSTs, want 1 (the first met the expired token): %+v", len(posts), posts)
	}
	p := posts[0]
	if p.target != "/submit?draft=1" || p.contentType != "application/x-www-form-urlencoded" || p.user != "alice" {
		t.Errorf("the site got %s, Content-Type %q, X-User %q", p.target, p.contentType, p.user)
	}
	if !slices.Equal(p.fields, formFields) {
		t.Errorf("the site got fields\n%q\nwant\n%q", p.fields, formFields)
	}
}

// Issue #3, 6: without JavaScript the <noscript> form refreshes, and the
// endpoint's 303 lands on the page.
func testNoScriptFormRefreshes(t *testing.T, browser context.Context) {
	auth := newAuthBackend(t, http.StatusOK, true)
	base := upstreamSite(t, auth, "")
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	if _, err := chromedp.Call(tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	expireSession(t, tab, base, "rt-1")
	reqs := browsertest.RecordRequests(t, tab)

	if err := chromedp.Do(tab, chromedp.Navigate(base+"/docs/page?x=1")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, tab, `document.querySelector("form button").textContent`, "Continue")
	// The card shows itself 300 ms in; a click before would miss the button.
	browsertest.WaitJS(t, tab, `getComputedStyle(document.querySelector("form button")).visibility`, "visible")
	if len(auth.recorded()) != 0 {
		t.Fatal("a refresh happened before the button was pressed: is JavaScript really off?")
	}
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("form button"))); err != nil {
		t.Fatal(err)
	}
	// The interstitial is served with Referrer-Policy: no-referrer, so
	// Chromium sends this form POST with "Origin: null" (and
	// "Sec-Fetch-Site: same-origin"); the endpoint must still take it.
	if got := reqs.Wait(t, "POST /refreshsession "); got != "POST /refreshsession 303" {
		t.Fatalf("the <noscript> form's refresh POST was answered %q, want a 303 back to the page", strings.TrimPrefix(got, "POST /refreshsession "))
	}
	browsertest.WaitJS(t, tab, where, "/docs/page?x=1 protected content for alice")
	checkOneRefresh(t, auth, "rt-1")
	if c := auth.recorded()[0]; c.contentType != "application/x-www-form-urlencoded" || c.body != "redirectToPath=%2Fdocs%2Fpage%3Fx%3D1" {
		t.Errorf("the auth backend got Content-Type %q, body %q: the form must reach it whole", c.contentType, c.body)
	}
	checkRequests(t, reqs, map[string]int{
		"GET /docs/page?x=1 401":   1,
		"POST /refreshsession 303": 1,
		"GET /docs/page?x=1 200":   1,
	})
}

// aliceLogin is a login page whose form starts a session for "alice" through
// Session-Gate-Issue and returns to redirectToPath.
const aliceLogin = `handle /login {
		@signin method POST
		header @signin Session-Gate-Issue "{\"sub\":\"alice\",\"claims\":{\"name\":\"Alice\"}}"
		redir @signin {query.redirectToPath} 303

		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>login</title><h1 id="msg">Please sign in</h1>
			<form method="post"><button id="signin">Continue as Alice</button></form>
			HTML 200
	}`

// Issue #4: with the internal refresher, the whole life of a session in a
// browser: login through Session-Gate-Issue, a protected page, expiry,
// the interstitial's refresh, sign-out, and a revoked refresh token.
func testInternalRefresherLoginToSignout(t *testing.T, browser context.Context) {
	const accessTTL = time.Minute
	advance := fakeClock(t) // the access token expires when the test says so
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresher {
			access_ttl `+accessTTL.String()+`
			store memory
		}
	}
	`+aliceLogin+`
	handle {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>{path}</title><h1 id="msg">Hello, {http.auth.user.name} ({http.auth.user.id})</h1>
			<form method="post" action="/signout"><button id="signout">Sign out</button></form>
			HTML 200
	}
`)
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	reqs := browsertest.RecordRequests(t, tab)
	click := func(id string) {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.Click(chromedp.ID(id))); err != nil {
			t.Fatalf("click #%s: %v", id, err)
		}
	}

	// No session: login, and back to the page after it.
	browsertest.Open(t, tab, base+"/account")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Faccount Please sign in")
	click("signin")
	browsertest.WaitJS(t, tab, where, "/account Hello, Alice (alice)")
	first := cookies(t, tab, base)
	for _, name := range []string{"sAccessToken", "sRefreshToken", "sRefreshHint"} {
		if first[name] == "" {
			t.Fatalf("no %s cookie after login: %v", name, first)
		}
	}

	// The access token expires; the next page goes through the interstitial.
	advance(accessTTL + time.Second)
	browsertest.Open(t, tab, base+"/other?y=1")
	browsertest.WaitJS(t, tab, where, "/other?y=1 Hello, Alice (alice)")
	checkRequests(t, reqs, map[string]int{
		"GET /other?y=1 401":       1,
		"POST /refreshsession 200": 1,
		"GET /other?y=1 200":       1,
	})
	second := cookies(t, tab, base)
	if second["sAccessToken"] == first["sAccessToken"] || second["sRefreshToken"] == first["sRefreshToken"] || second["sRefreshToken"] == "" {
		t.Errorf("the refresh did not renew both tokens")
	}

	// Sign out: login, no cookies left, and protected pages go to login.
	click("signout")
	browsertest.WaitJS(t, tab, where, "/login Please sign in")
	checkRequests(t, reqs, map[string]int{"POST /signout 303": 1})
	if left := cookies(t, tab, base); len(left) != 0 {
		t.Errorf("cookies left after sign-out: %v", left)
	}
	browsertest.Open(t, tab, base+"/account")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Faccount Please sign in")
	checkRequests(t, reqs, map[string]int{"GET /account 302": 2})

	// The signed-out session's refresh token is dead, even if it was kept.
	setCookie(t, tab, base, "sRefreshToken", second["sRefreshToken"], DefaultRefreshPath)
	setCookie(t, tab, base, "sRefreshHint", "1", "/")
	browsertest.Open(t, tab, base+"/account")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Faccount Please sign in")
	checkRequests(t, reqs, map[string]int{
		"GET /account 401":         1, // the hint cookie: the interstitial
		"POST /refreshsession 401": 1,
		"POST /refreshsession 200": 1, // still only the earlier one
	})
}

// browserSignIn is a device: a tab in a profile of its own, whose browser
// says userAgent ("": Chromium's own), signed in as alice through
// aliceLogin from /account, where it is left. Its requests are recorded.
func browserSignIn(t *testing.T, browser context.Context, base, name, userAgent string) (context.Context, *browsertest.Requests) {
	t.Helper()
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	if userAgent != "" {
		if _, err := chromedp.Call(tab, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: userAgent}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := browsertest.RecordRequests(t, tab)
	browsertest.Open(t, tab, base+"/account")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Faccount Please sign in")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("signin"))); err != nil {
		t.Fatalf("%s: sign in: %v", name, err)
	}
	browsertest.WaitJS(t, tab, where, "/account Hello, Alice (alice)")
	return tab, reqs
}

// Sessions for operators: a person signed in on two devices (two browser
// contexts) signs out everywhere on one, whose access token has expired
// meanwhile: the sign-out gets the interstitial, which refreshes and sends
// it again with a fresh token. The other device, whose access token has not
// expired, goes to login on its next click.
func testSignOutEverywhere(t *testing.T, browser context.Context) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresher {
			access_ttl 10m
			store memory
		}
	}
	`+aliceLogin+`
	handle {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>{path}</title><h1 id="msg">Hello, {http.auth.user.name} ({http.auth.user.id})</h1>
			<a id="next" href="/next">next page</a>
			<form method="post" action="/signout"><input type="hidden" name="everywhere" value="1"><button id="everywhere">Sign out everywhere</button></form>
			HTML 200
	}
`)
	laptop, laptopReqs := browserSignIn(t, browser, base, "laptop", "")
	phone, phoneReqs := browserSignIn(t, browser, base, "phone", "")
	phoneAccess := cookies(t, phone, base)["sAccessToken"]
	claims := hsClaims(t, phoneAccess)
	if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) < 5*time.Minute {
		t.Fatalf("the phone's access token expires at %v: the test needs one far from expiry", exp)
	}
	if claims["sid"] == hsClaims(t, cookies(t, laptop, base)["sAccessToken"])["sid"] {
		t.Fatal("both devices share one session: they must be two")
	}
	laptopSID := hsClaims(t, cookies(t, laptop, base)["sAccessToken"])["sid"]
	setCookie(t, laptop, base, "sAccessToken", token(t, jwt.MapClaims{
		"sub": "alice", "sid": laptopSID, "exp": time.Now().Add(-time.Minute).Unix(),
	}), "/")

	if err := chromedp.Do(laptop, chromedp.Click(chromedp.ID("everywhere"))); err != nil {
		t.Fatalf("laptop: sign out everywhere: %v", err)
	}
	browsertest.WaitJS(t, laptop, where, "/login Please sign in")
	checkRequests(t, laptopReqs, map[string]int{
		"POST /signout 401":        1, // expired: the interstitial, nothing revoked yet
		"POST /refreshsession 200": 1,
		"POST /signout 303":        1, // sent again with the fresh token
	})

	// The phone still holds its unexpired access token; its next click
	// goes through the interstitial, whose refresh fails, to login.
	if got := cookies(t, phone, base)["sAccessToken"]; got != phoneAccess {
		t.Fatal("the phone's cookies changed without a request")
	}
	if err := chromedp.Do(phone, chromedp.Click(chromedp.ID("next"))); err != nil {
		t.Fatalf("phone: click: %v", err)
	}
	browsertest.WaitJS(t, phone, where, "/login?redirectToPath=%2Fnext Please sign in")
	checkRequests(t, phoneReqs, map[string]int{
		"GET /next 401":            1, // refused although unexpired: the interstitial
		"POST /refreshsession 401": 1,
		"GET /next 200":            0,
	})
}
