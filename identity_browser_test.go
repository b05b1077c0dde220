package sessiongate

// Browser tests of the site behind the gate: htmx (the real library, from
// testdata/htmx) meeting an expired and a missing session, and a login page
// on another host name.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/session-gate/session_gate/internal/browsertest"
)

// Host names the cross-host test maps to loopback in Chromium; they share
// the parent domain example.test, so cookie_domain can span them.
const (
	appHost  = "app.example.test"
	authHost = "auth.example.test"
)

func TestBrowserIdentity(t *testing.T) {
	browser := browsertest.Start(t,
		chromedp.Flag("host-resolver-rules", "MAP "+appHost+" 127.0.0.1, MAP "+authHost+" 127.0.0.1"))
	for _, c := range []struct {
		name string
		run  func(*testing.T, context.Context)
	}{
		{"HTMXExpiredTokenReloadsAndRefreshes", testHTMXExpiredTokenReloadsAndRefreshes(http.StatusUnauthorized)},
		{"HTMXExpiredTokenReloadsAndRefreshes440", testHTMXExpiredTokenReloadsAndRefreshes(440)},
		{"HTMXMissingSessionGoesToLogin", testHTMXMissingSessionGoesToLogin},
		{"LoginOnAnotherHost", testLoginOnAnotherHost},
		{"ForbiddenPageSignsOut", testForbiddenPageSignsOut},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, browsertest.NewProfile(t, browser)) })
	}
}

// htmxSite is docs/identity.md's htmx recipe: a page whose buttons fetch fragments
// with htmx, behind a gate that refreshes through auth; more settings of
// the gate may follow.
func htmxSite(t *testing.T, auth *authBackend, more ...string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "htmx"))
	if err != nil {
		t.Fatal(err)
	}
	return site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresh_upstream `+strings.TrimPrefix(auth.URL, "http://")+`
		public /htmx.min.js
		`+strings.Join(more, "\n")+`
	}
`+loginHandle+`
	handle /htmx.min.js {
		root * `+dir+`
		file_server
	}
	handle /fragment {
		respond "fragment for {http.auth.user.id}"
	}
	handle /save {
		respond "saved for {http.auth.user.id}"
	}
	handle {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>page</title><script src="/htmx.min.js"></script>
			<p id="msg">page for {http.auth.user.id}</p>
			<button id="get" hx-get="/fragment" hx-target="#out">get</button>
			<button id="post" hx-post="/save" hx-target="#out">post</button>
			<div id="out"></div>
			HTML 200
	}
`)
}

// openHTMXPage loads path with a valid session and waits for htmx.
func openHTMXPage(t *testing.T, tab context.Context, base, path string) {
	t.Helper()
	setCookie(t, tab, base, "sAccessToken", token(t, validClaims()), "/")
	browsertest.Open(t, tab, base+path)
	browsertest.WaitJS(t, tab, where, path+" page for alice")
	browsertest.WaitJS(t, tab, "typeof htmx", "object")
}

func click(t *testing.T, tab context.Context, id string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID(id))); err != nil {
		t.Fatalf("click #%s: %v", id, err)
	}
}

// An access token that expires while the page is open: htmx's fragment
// request gets the expired status (401, or session_expired_status) with
// HX-Refresh, the page reloads into the interstitial, which refreshes and
// brings the page back; the fragment then loads.
func testHTMXExpiredTokenReloadsAndRefreshes(status int) func(*testing.T, context.Context) {
	return func(t *testing.T, profile context.Context) {
		var more []string
		if status != http.StatusUnauthorized {
			more = append(more, fmt.Sprintf("session_expired_status %d", status))
		}
		auth := newAuthBackend(t, 200, true)
		base := htmxSite(t, auth, more...)
		tab := browsertest.NewTab(t, profile)
		openHTMXPage(t, tab, base, "/inbox?folder=a")
		setCookie(t, tab, base, "sAccessToken", token(t, expiredClaims()), "/")
		reqs := browsertest.RecordRequests(t, tab)

		click(t, tab, "get")
		reqs.Wait(t, fmt.Sprintf("GET /fragment %d", status))
		reqs.Wait(t, fmt.Sprintf("GET /inbox?folder=a %d", status)) // the reload, answered by the interstitial
		reqs.Wait(t, "POST /refreshsession 200")
		reqs.Wait(t, "GET /inbox?folder=a 200")
		browsertest.WaitJS(t, tab, where, "/inbox?folder=a page for alice")
		browsertest.WaitJS(t, tab, "typeof htmx", "object")

		click(t, tab, "get")
		browsertest.WaitJS(t, tab, `document.getElementById("out").textContent`, "fragment for alice")
		checkRequests(t, reqs, map[string]int{"POST /refreshsession": 1, "GET /fragment 200": 1})
	}
}

// No session at all during an hx-post: HX-Redirect takes the page (not the
// fragment) to login, with the page's path and query to come back to.
func testHTMXMissingSessionGoesToLogin(t *testing.T, profile context.Context) {
	auth := newAuthBackend(t, 200, true)
	base := htmxSite(t, auth)
	tab := browsertest.NewTab(t, profile)
	openHTMXPage(t, tab, base, "/inbox?folder=a")
	if _, err := chromedp.Call(tab, network.DeleteCookies, network.DeleteCookiesParams{Name: "sAccessToken", URL: base + "/"}); err != nil {
		t.Fatal(err)
	}
	reqs := browsertest.RecordRequests(t, tab)

	click(t, tab, "post")
	reqs.Wait(t, "POST /save 401")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Finbox%3Ffolder%3Da Please sign in")
	if n := len(auth.recorded()); n != 0 {
		t.Errorf("the auth backend got %d calls, want none", n)
	}
}

// loginHostSite boots Caddy serving both host names on one port: the gate
// with its internal refresher, cookies for the whole of example.test, and a
// login page on auth.example.test that starts the session (issue_header) and
// sends the browser back to the absolute URL in redirectToPath. It is the
// "central login" recipe of docs/identity.md.
func loginHostSite(t *testing.T) (appBase, authBase string) {
	t.Helper()
	port := freePort(t)
	cfg := globalOptions(port, "\tauto_https off") + fmt.Sprintf(`http://%s:%d, http://%s:%d {
	session_gate {
		secret "%s"
		login_url http://%s:%d/login
		public /login /login/*
		refresher {
			store memory
			cookie_domain example.test
		}
	}
	@signin {
		host %s
		method POST
		path /login/submit
	}
	handle @signin {
		# A real login page checks the password, and that redirectToPath is
		# one of its own sites, before it says who this is.
		header Session-Gate-Issue "{\"sub\":\"alice\"}"
		redir {http.request.uri.query.redirectToPath} 303
	}
	handle /login {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>login</title><h1 id="msg">Please sign in</h1>
			<form method="post" action="/login/submit?{http.request.uri.query}"><button id="signin">Sign in</button></form>
			HTML 200
	}
	handle {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>app</title><p id="msg">{http.request.hostport} for {http.auth.user.id}</p>
			HTML 200
	}
}
`, appHost, port, authHost, port, testSecret, authHost, port, authHost)
	startCaddy(t, cfg)
	return fmt.Sprintf("http://%s:%d", appHost, port), fmt.Sprintf("http://%s:%d", authHost, port)
}

// Sign in on the login host, land back on the app host at the page first
// asked for, and refresh there once the access token has expired: the
// cookies, set for example.test, serve both hosts.
func testLoginOnAnotherHost(t *testing.T, profile context.Context) {
	appBase, authBase := loginHostSite(t)
	tab := browsertest.NewTab(t, profile)
	reqs := browsertest.RecordRequests(t, tab)

	browsertest.Open(t, tab, appBase+"/docs?x=1")
	browsertest.WaitJS(t, tab, "location.origin+location.pathname+location.search",
		authBase+"/login?redirectToPath="+url.QueryEscape(appBase+"/docs?x=1"))
	browsertest.WaitJS(t, tab, `document.getElementById("msg").textContent`, "Please sign in")
	click(t, tab, "signin")
	browsertest.WaitJS(t, tab, "location.origin+location.pathname+location.search+' '+document.getElementById('msg').textContent",
		appBase+"/docs?x=1 "+strings.TrimPrefix(appBase, "http://")+" for alice")

	jar := domainCookies(t, tab, appBase)
	for _, name := range []string{"sAccessToken", "sRefreshToken"} {
		if jar[name].Domain != ".example.test" {
			t.Fatalf("%s: domain %q, want .example.test (cookies: %v)", name, jar[name].Domain, jar)
		}
	}

	// Time passes: the access token expires (signed with the refresher's key).
	expired := token(t, expiredClaims())
	httpOnly := true
	if _, err := chromedp.Call(tab, network.SetCookie, network.SetCookieParams{
		Name: "sAccessToken", Value: expired, Domain: ".example.test", Path: "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax,
	}); err != nil {
		t.Fatal(err)
	}
	browsertest.Open(t, tab, appBase+"/later")
	reqs.Wait(t, "POST /refreshsession 200")
	browsertest.WaitJS(t, tab, "location.origin+location.pathname+' '+document.getElementById('msg').textContent",
		appBase+"/later "+strings.TrimPrefix(appBase, "http://")+" for alice")
	if got := domainCookies(t, tab, appBase)["sAccessToken"]; got.Value == expired || got.Domain != ".example.test" {
		t.Errorf("after the refresh: sAccessToken domain %q, replaced %v", got.Domain, got.Value != expired)
	}
}

// domainCookies returns the browser's cookies for base (the refresh path's
// included) by name.
func domainCookies(t *testing.T, tab context.Context, base string) map[string]*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(tab, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/", base + DefaultRefreshPath}})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		m[c.Name] = c
	}
	return m
}

// A person without the role a path needs sees the 403 page (its CSP holds:
// NewTab fails the test on a violation), and its button signs them out.
func testForbiddenPageSignsOut(t *testing.T, profile context.Context) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		authorize /admin/* {
			role admin
		}
		refresher {
			store memory
		}
	}
`+loginHandle+`
	respond "admin area"
`)
	tab := browsertest.NewTab(t, profile)
	reqs := browsertest.RecordRequests(t, tab)
	setCookie(t, tab, base, "sAccessToken", token(t, jwt.MapClaims{"sub": "bob", "role": "user", "exp": time.Now().Add(time.Hour).Unix()}), "/")
	browsertest.Open(t, tab, base+"/admin/users")
	browsertest.WaitJS(t, tab, where, "/admin/users You don't have access to this page")
	reqs.Wait(t, "GET /admin/users 403")
	browsertest.WaitJS(t, tab, `getComputedStyle(document.querySelector("main")).borderRadius`, "12px") // the nonce'd style applies
	click(t, tab, "signout")
	reqs.Wait(t, "POST /signout 303")
	browsertest.WaitJS(t, tab, where, "/login Please sign in")
	if _, ok := cookies(t, tab, base)["sAccessToken"]; ok {
		t.Error("the access token cookie is still there after sign-out")
	}
}
