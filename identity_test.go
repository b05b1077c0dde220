package sessiongate

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/golang-jwt/jwt/v5"
)

// spoofs are the spellings of Remote-User a client could send hoping to be
// taken for the gate: FastCGI and CGI turn "-" and "_" alike into "_".
var spoofs = []string{"Remote-User", "remote-user", "Remote_User", "REMOTE_USER"}

// echoUpstream is a backend behind reverse_proxy that answers with the
// request headers it got, as JSON.
func echoUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func identityClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":          "alice",
		"groups":       []any{"staff", "ops"},
		"realm_access": map[string]any{"roles": []any{"editor", "reader"}},
		"exp":          time.Now().Add(time.Hour).Unix(),
	}
}

// headersReceived asks the site for target with every spoofed Remote-User
// spelling (sent byte for byte, not canonicalised) and returns the headers
// the upstream saw.
func headersReceived(t *testing.T, base, method, target, cookie string) http.Header {
	t.Helper()
	req := asAPI(newRequest(t, method, base+target, nil))
	for _, s := range spoofs {
		req.Header[s] = []string{"mallory"}
	}
	if cookie != "" {
		withCookie(req, "sAccessToken", cookie)
	}
	got := do(t, req)
	if got.status != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %.200q", target, got.status, got.body)
	}
	var h http.Header
	if err := json.Unmarshal([]byte(got.body), &h); err != nil {
		t.Fatalf("GET %s: %v in %.200q", target, err, got.body)
	}
	return h
}

// remoteUsers lists the values of every header the upstream got whose name
// is some spelling of Remote-User.
func remoteUsers(h http.Header) []string {
	var out []string
	for name, v := range h {
		if normalHeaderName(name) == "remote-user" {
			out = append(out, v...)
		}
	}
	return out
}

// TestClaimHeadersReachTheUpstreamAndSpoofsNever runs the "headers to a
// backend" recipe of docs/identity.md. (Caddy 2.11 drops the underscore spellings itself
// before any handler runs, unless the server's expected_underscore_headers
// names them: TestFastCGIRemoteUserIsTheClaim covers that case.)
func TestClaimHeadersReachTheUpstreamAndSpoofsNever(t *testing.T) {
	echo := echoUpstream(t)
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		claim_header sub Remote-User
		claim_header groups X-Groups
		claim_header realm_access.roles X-Roles
		claim_header email X-Email
		public /public/*
		optional /maybe/*
		refresh_upstream `+echo+`
	}
	reverse_proxy `+echo+` {
		header_up X-Placeholder-Groups {http.auth.user.groups}
		header_up X-Placeholder-Roles {http.auth.user.realm_access.roles}
	}
`)
	valid := token(t, identityClaims())
	for _, c := range []struct {
		method, target, cookie string
		want                   []string // the Remote-User values the upstream may see
	}{
		{"GET", "/app", valid, []string{"alice"}},
		{"GET", "/public/page", valid, nil},
		{"GET", "/public/page", "", nil},
		{"GET", "/maybe/page", valid, []string{"alice"}},
		{"GET", "/maybe/page", "", nil},
		{"GET", "/maybe/page", "not.a.token", nil},
		{"POST", "/refreshsession", valid, nil}, // through refresh_upstream
		{"POST", "/signout", valid, nil},        // passed to the site with refresh_upstream
	} {
		h := headersReceived(t, base, c.method, c.target, c.cookie)
		if got := remoteUsers(h); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s (token %v): Remote-User values %q, want %q", c.target, c.cookie != "", got, c.want)
		}
		if c.want == nil {
			continue
		}
		for name, want := range map[string]string{
			"X-Groups": "staff,ops", "X-Roles": "editor,reader",
			"X-Placeholder-Groups": "staff,ops", "X-Placeholder-Roles": "editor,reader",
		} {
			if got := h.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("%s: %s = %q, want %q", c.target, name, got, want)
			}
		}
		if got := h.Values("X-Email"); got != nil {
			t.Errorf("%s: a claim the token lacks set X-Email = %q", c.target, got)
		}
	}
}

// TestFastCGIRemoteUserIsTheClaim puts a FastCGI responder (Go's net/http/fcgi)
// behind reverse_proxy's fastcgi transport, the one php_fastcgi uses: Caddy
// sets REMOTE_USER from {http.auth.user.id}, and the gate makes sure no
// spelling of Remote-User a client sent arrives as HTTP_REMOTE_USER.
//
// Caddy 2.11 itself drops every request header with an underscore unless
// the server's expected_underscore_headers names it (and then drops its
// hyphenated twin instead). So each spelling reaches the gate in one of the
// two server configurations below, and the gate alone must stop it there.
func TestFastCGIRemoteUserIsTheClaim(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		_ = fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "REMOTE_USER=%s HTTP_REMOTE_USER=%s", fcgi.ProcessEnv(r)["REMOTE_USER"], strings.Join(r.Header.Values("Remote-User"), "|"))
		}))
	}()
	valid := token(t, identityClaims())
	for _, global := range []string{"", "servers {\n\t\texpected_underscore_headers Remote_User\n\t}"} {
		t.Run(global, func(t *testing.T) { fastCGISpoofs(t, global, l.Addr().String(), valid) })
	}
}

// fastCGISpoofs boots a gate with claim_header sub Remote-User in front of the
// FastCGI responder at upstream, under the server options global, and sends
// each spelling of Remote-User with and without a valid token.
func fastCGISpoofs(t *testing.T, global, upstream, valid string) {
	t.Helper()
	base := siteWithGlobal(t, global, `
	session_gate {
		secret "`+testSecret+`"
		claim_header sub Remote-User
		optional /maybe/*
	}
	reverse_proxy `+upstream+` {
		transport fastcgi {
			root /srv
		}
	}
`)
	for _, c := range []struct{ target, cookie, want string }{
		{"/index.php", valid, "REMOTE_USER=alice HTTP_REMOTE_USER=alice"},
		{"/maybe/index.php", "", "REMOTE_USER= HTTP_REMOTE_USER="},
	} {
		for _, spoof := range spoofs {
			req := asAPI(newRequest(t, "GET", base+c.target, nil))
			req.Header[spoof] = []string{"mallory"}
			if c.cookie != "" {
				withCookie(req, "sAccessToken", c.cookie)
			}
			got := do(t, req)
			if got.status != 200 || got.body != c.want {
				t.Errorf("%q: %s with %s: mallory: %d %q, want %q", global, c.target, spoof, got.status, got.body, c.want)
			}
		}
	}
}

// TestAuthorizeTable runs every kind of authorize line for a navigation and
// an API call; it is the "per-path roles" recipe of docs/identity.md.
func TestAuthorizeTable(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		authorize /admin/* {
			role admin
		}
		authorize /team/* {
			groups ops security
		}
		authorize /editor/* {
			realm_access.roles editor
		}
		authorize /level/* {
			level 42
		}
		authorize /verified/* {
			email_verified true
		}
		authorize /nosuch/* {
			department sales
		}
		authorize /ops/* {
			groups ops
		}
		authorize /ops/admin/* {
			role admin
			level 42 43
		}
	}
	respond "ok {http.auth.user.id}"
`)
	admin := token(t, jwt.MapClaims{
		"sub": "ada", "role": "admin", "groups": []any{"staff", "ops"}, "level": 42, "email_verified": true,
		"realm_access": map[string]any{"roles": []any{"editor"}}, "exp": time.Now().Add(time.Hour).Unix(),
	})
	user := token(t, jwt.MapClaims{
		"sub": "bob", "role": "user", "groups": []any{"staff"}, "level": 7, "email_verified": false,
		"realm_access": map[string]any{"roles": []any{"reader"}}, "exp": time.Now().Add(time.Hour).Unix(),
	})
	opsOnly := token(t, jwt.MapClaims{"sub": "olga", "groups": []any{"ops"}, "exp": time.Now().Add(time.Hour).Unix()})
	expired := token(t, jwt.MapClaims{"sub": "bob", "role": "user", "exp": time.Now().Add(-time.Minute).Unix()})

	for _, c := range []struct {
		name, target, cookie string
		want                 int
	}{
		{"scalar holds", "/admin/x", admin, 200},
		{"scalar fails", "/admin/x", user, 403},
		{"array element matches one value", "/team/x", admin, 200},
		{"array without the value", "/team/x", user, 403},
		{"nested array", "/editor/x", admin, 200},
		{"nested array fails", "/editor/x", user, 403},
		{"number as text", "/level/x", admin, 200},
		{"number fails", "/level/x", user, 403},
		{"boolean as text", "/verified/x", admin, 200},
		{"boolean false", "/verified/x", user, 403},
		{"missing claim", "/nosuch/x", admin, 403},
		{"unmatched path", "/elsewhere", user, 200},
		{"overlapping blocks all hold", "/ops/admin/x", admin, 200},
		{"outer block holds, inner fails", "/ops/admin/x", opsOnly, 403},
		{"outer block only", "/ops/x", opsOnly, 200},
		{"inner would hold, outer fails", "/ops/admin/x", user, 403},
		{"expired is answered first", "/admin/x", expired, 401},
	} {
		for _, nav := range []bool{true, false} {
			req := newRequest(t, "GET", base+c.target, nil)
			if nav {
				asNavigation(req)
			} else {
				asAPI(req)
			}
			withCookie(req, "sAccessToken", c.cookie)
			got := do(t, req)
			if got.status != c.want {
				t.Errorf("%s (navigation %v): status %d, want %d", c.name, nav, got.status, c.want)
				continue
			}
			if got.status != 403 {
				continue
			}
			if got.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: 403 Cache-Control %q", c.name, got.header.Get("Cache-Control"))
			}
			if !nav {
				if got.body != `{"message":"invalid claim"}` || got.header.Get("Content-Type") != "application/json" {
					t.Errorf("%s (API): 403 %s %q", c.name, got.header.Get("Content-Type"), got.body)
				}
				continue
			}
			checkForbiddenPage(t, got)
		}
	}
	// Missing and invalid tokens are answered before authorize is looked at.
	if got := do(t, asNavigation(newRequest(t, "GET", base+"/admin/x", nil))); got.status != 302 {
		t.Errorf("no token on /admin/x: status %d, want 302", got.status)
	}
}

// checkForbiddenPage checks the 403 page's headers: its one inline style by
// nonce, nothing else, and the sign-out form.
func checkForbiddenPage(t *testing.T, got reply) {
	t.Helper()
	csp := got.header.Get("Content-Security-Policy")
	nonce, _, _ := strings.Cut(strings.TrimPrefix(csp[strings.Index(csp, "'nonce-"):], "'nonce-"), "'")
	for header, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
	} {
		if v := got.header.Get(header); v != want {
			t.Errorf("403 page: %s %q, want %q", header, v, want)
		}
	}
	if len(nonce) < 22 || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") ||
		strings.Contains(csp, "script-src") {
		t.Errorf("403 page CSP %q", csp)
	}
	for _, want := range []string{`<style nonce="` + nonce + `">`, "You don&#39;t have access to this page", `<form method="post" action="/signout">`} {
		if !strings.Contains(got.body, want) && !strings.Contains(got.body, strings.ReplaceAll(want, "&#39;", "'")) {
			t.Errorf("403 page lacks %q", want)
		}
	}
	if strings.Count(got.body, "<style") != 1 || strings.Contains(got.body, "<script") || len(got.body) > 4096 {
		t.Errorf("403 page: %d bytes, %d styles, script %v", len(got.body), strings.Count(got.body, "<style"), strings.Contains(got.body, "<script"))
	}
}

// TestOptionalPaths: identity when present, anonymous when not, and an
// expired token still restores its session.
func TestOptionalPaths(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		optional /blog/*
	}
	respond "hello [{http.auth.user.id}]"
`)
	for _, c := range []struct {
		name, cookie string
		nav          bool
		status       int
		body         string
	}{
		{"valid", token(t, validClaims()), true, 200, "hello [alice]"},
		{"missing", "", true, 200, "hello []"},
		{"invalid", "not.a.token", true, 200, "hello []"},
		{"expired navigation", token(t, expiredClaims()), true, 401, "Restoring your session"},
		{"expired API call", token(t, expiredClaims()), false, 401, `{"message":"try refresh token"}`},
	} {
		req := newRequest(t, "GET", base+"/blog/post", nil)
		if c.nav {
			asNavigation(req)
		} else {
			asAPI(req)
		}
		if c.cookie != "" {
			withCookie(req, "sAccessToken", c.cookie)
		}
		if got := do(t, req); got.status != c.status || !strings.Contains(got.body, c.body) {
			t.Errorf("%s: %d %.100q, want %d %q", c.name, got.status, got.body, c.status, c.body)
		}
	}
}

// TestHTMXAnswers checks the headers htmx acts on.
func TestHTMXAnswers(t *testing.T) {
	base := site(t, gateBlock)
	host := strings.TrimPrefix(base, "http://")
	for _, c := range []struct {
		name, cookie, current string
		refresh, redirect     string
	}{
		{"expired", token(t, expiredClaims()), base + "/page", "true", ""},
		{"missing, same origin", "", base + "/inbox?folder=a%20b", "", "/login?redirectToPath=%2Finbox%3Ffolder%3Da%2520b"},
		{"invalid, same origin", "not.a.token", "http://" + host + "/p", "", "/login?redirectToPath=%2Fp"},
		{"missing, another origin", "", "http://evil.example/steal", "", "/login?redirectToPath=%2F"},
		{"missing, open redirect in the path", "", base + "//evil.example/", "", "/login?redirectToPath=%2F"},
		{"missing, no HX-Current-URL", "", "", "", "/login?redirectToPath=%2F"},
	} {
		// A navigation's headers too: HX-Request alone makes it an API call.
		req := asNavigation(newRequest(t, "GET", base+"/fragment", nil))
		req.Header.Set("HX-Request", "true")
		if c.current != "" {
			req.Header.Set("HX-Current-URL", c.current)
		}
		if c.cookie != "" {
			withCookie(req, "sAccessToken", c.cookie)
		}
		got := do(t, req)
		if got.status != 401 || got.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want a 401 JSON answer", c.name, got.status, got.header.Get("Content-Type"))
		}
		if r := got.header.Get("HX-Refresh"); r != c.refresh {
			t.Errorf("%s: HX-Refresh %q, want %q", c.name, r, c.refresh)
		}
		if r := got.header.Get("HX-Redirect"); r != c.redirect {
			t.Errorf("%s: HX-Redirect %q, want %q", c.name, r, c.redirect)
		}
	}
}

// TestCORSPreflight: pass lets a preflight through untouched; gate (the
// default) answers it like any request without a session.
func TestCORSPreflight(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    int
	}{{"cors_preflight pass", 204}, {"", 401}} {
		base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		`+c.setting+`
	}
	@preflight method OPTIONS
	respond @preflight 204
	respond "hello"
`)
		req := newRequest(t, "OPTIONS", base+"/api/items", nil)
		req.Header.Set("Origin", "http://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		if got := do(t, req); got.status != c.want {
			t.Errorf("%q: preflight status %d, want %d", c.setting, got.status, c.want)
		}
		// OPTIONS that is not a preflight is gated either way.
		if got := do(t, newRequest(t, "OPTIONS", base+"/api/items", nil)); got.status != 401 {
			t.Errorf("%q: plain OPTIONS status %d, want 401", c.setting, got.status)
		}
	}
}

func TestIdentityConfigErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"claim_header sub", "claim_header"},
		{"claim_header sub Remote-User\nclaim_header email remote_user", "already specified"},
		{"cors_preflight maybe", "cors_preflight"},
		{"cors_preflight pass\ncors_preflight gate", "already specified"},
		{"authorize /admin/*", "authorize"},
		{"authorize {\nrole\n}", "authorize"},
		{"optional", "optional"},
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(gateSite("secret "+testSecret+"\n"+c.body)), nil)
		if err == nil || !strings.Contains(err.Error(), "session_gate") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one naming session_gate and %q", c.body, err, c.want)
		}
	}
	if err := validateCaddyfile(t, gateSite("secret "+testSecret+"\nclaim_header sub Bad:Name")); err == nil || !strings.Contains(err.Error(), "claim_header") {
		t.Errorf("a bad header name: %v", err)
	}
}

// TestLoginOnAnotherHost: return_param carries an absolute URL when
// login_url is on another host (https behind a trusted TLS proxy). The same
// host keeps the bare path (TestReturnValueSameHostIsThePath).
func TestLoginOnAnotherHost(t *testing.T) {
	base := siteWithGlobal(t, "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", `
	session_gate {
		secret "`+testSecret+`"
		login_url http://auth.example.test/login?app=docs
	}
	respond "hello"
`)
	host := strings.TrimPrefix(base, "http://")
	for _, c := range []struct {
		name, proto, want string
	}{
		{"another host", "", "http://auth.example.test/login?app=docs&redirectToPath=" + url.QueryEscape("http://"+host+"/docs?q=1")},
		{"another host, https proxy", "https", "http://auth.example.test/login?app=docs&redirectToPath=" + url.QueryEscape("https://"+host+"/docs?q=1")},
	} {
		req := asNavigation(newRequest(t, "GET", base+"/docs?q=1", nil))
		if c.proto != "" {
			req.Header.Set("X-Forwarded-Proto", c.proto)
		}
		got := do(t, req)
		if got.status != 302 || got.header.Get("Location") != c.want {
			t.Errorf("%s: %d Location %q, want %q", c.name, got.status, got.header.Get("Location"), c.want)
		}
	}
	// htmx gets the same absolute URL.
	req := asAPI(newRequest(t, "POST", base+"/fragment", nil))
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Current-URL", base+"/inbox")
	want := "http://auth.example.test/login?app=docs&redirectToPath=" + url.QueryEscape("http://"+host+"/inbox")
	if got := do(t, req); got.header.Get("HX-Redirect") != want {
		t.Errorf("htmx: HX-Redirect %q, want %q", got.header.Get("HX-Redirect"), want)
	}
}

func TestReturnValueSameHostIsThePath(t *testing.T) {
	l, err := newLogin("https://auth.example.test/login", DefaultReturnParam)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://auth.example.test/x", nil)
	if got := l.returnValue(r, "/x"); got != "/x" {
		t.Errorf("same host: %q, want /x", got)
	}
	r.Host = "app.example.test"
	if got := l.returnValue(r, "/x"); got != "http://app.example.test/x" {
		t.Errorf("another host: %q", got)
	}
}

// TestAuthorizeWithoutPaths: a block without patterns holds everywhere the
// gate checks a token, but not on public paths, which are not checked.
func TestAuthorizeWithoutPaths(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		public /about
		authorize {
			email_verified true
		}
	}
	respond "ok"
`)
	verified := token(t, jwt.MapClaims{"sub": "ada", "email_verified": true, "exp": time.Now().Add(time.Hour).Unix()})
	unverified := token(t, jwt.MapClaims{"sub": "bob", "email_verified": false, "exp": time.Now().Add(time.Hour).Unix()})
	for _, c := range []struct {
		target, cookie string
		want           int
	}{
		{"/anything", verified, 200},
		{"/anything", unverified, 403},
		{"/deep/down/page", unverified, 403},
		{"/about", unverified, 200},
	} {
		if got := do(t, withCookie(asAPI(newRequest(t, "GET", base+c.target, nil)), "sAccessToken", c.cookie)); got.status != c.want {
			t.Errorf("%s: status %d, want %d", c.target, got.status, c.want)
		}
	}
}
