package sessiongate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/session-gate/session_gate/internal/redistest"
)

// testSecret is the HMAC key of every gate these tests boot.
const testSecret = "test-secret-of-at-least-thirty-two-bytes!"

// freePort asks the kernel for a loopback port nobody uses right now.
var freePort = redistest.FreePort

// adminPort is the in-process Caddy's admin port: one free port per test
// binary, so that test binaries running side by side (two developers, or a
// developer and CI) never load their configs into each other's Caddy.
var adminPort = sync.OnceValue(func() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
})

// caddyStorage is the in-process Caddy's storage folder, one per test binary
// and removed by TestMain: Caddy may still write there while a test's own
// TempDir is being removed, which fails that test's cleanup.
var caddyStorage = sync.OnceValue(func() string {
	dir, err := os.MkdirTemp("", "session_gate-caddy-storage-")
	if err != nil {
		panic(err)
	}
	return dir
})

// site boots real Caddy (in-process, through caddytest) with the given site
// block body under a session_gate-friendly global section, and returns the
// site's base URL. One Caddy serves the whole test binary; each call loads a
// new config into it.
func site(t *testing.T, body string) string {
	t.Helper()
	return siteWithGlobal(t, "", body)
}

// globalOptions is the global options block every test Caddy starts with:
// the tests' admin port, quiet logs, httpPort, nothing persisted, storage in
// the tests' app data; more options follow.
func globalOptions(httpPort int, more string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	log {
		level WARN
	}
	http_port %d
	persist_config off
	storage file_system %s
%s
}
`, adminPort(), httpPort, caddyStorage(), more)
}

// startCaddy loads a Caddyfile into the tests' Caddy and stops the test
// when it does not load.
func startCaddy(t *testing.T, cfg string) {
	t.Helper()
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort()})
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

// siteWithGlobal is site with more global options (servers { … }, say).
func siteWithGlobal(t *testing.T, global, body string) string {
	t.Helper()
	return siteForHost(t, global, "localhost", body)
}

// siteForHost is siteWithGlobal for a site address's host ("" serves every
// Host a request names); the base URL still dials localhost.
func siteForHost(t *testing.T, global, host, body string) string {
	t.Helper()
	if err := os.MkdirAll(caddy.AppDataDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	startCaddy(t, globalOptions(port, "\tauto_https off\n"+global)+fmt.Sprintf("http://%s:%d {\n%s\n}\n", host, port, body))
	return fmt.Sprintf("http://localhost:%d", port)
}

// token mints an HS256 token with the test secret.
func token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims() jwt.MapClaims {
	return jwt.MapClaims{"sub": "alice", "role": "admin", "exp": time.Now().Add(time.Hour).Unix()}
}

func expiredClaims() jwt.MapClaims {
	return jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type reply struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(body)}
}

func newRequest(t *testing.T, method, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// asNavigation and asAPI dress a request as a browser page load or as fetch().
func asNavigation(r *http.Request) *http.Request {
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Sec-Fetch-Dest", "document")
	return r
}

func asAPI(r *http.Request) *http.Request {
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Sec-Fetch-Mode", "cors")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return r
}

func withCookie(r *http.Request, name, value string) *http.Request {
	r.AddCookie(&http.Cookie{Name: name, Value: value})
	return r
}

const gateBlock = `
	session_gate {
		secret "` + testSecret + `"
	}
	respond "hello {http.auth.user.id} role={http.auth.user.role}"
`

func TestVerdictTable(t *testing.T) {
	base := site(t, gateBlock)
	valid := token(t, validClaims())
	expired := token(t, expiredClaims())
	forged := valid[:len(valid)-4] + "AAAA"
	wrongKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims()).SignedString([]byte("another-secret-of-at-least-32-bytes!!"))

	type want struct {
		status   int
		location string // expected Location (navigation to login)
		body     string // substring of the body
	}
	cases := []struct {
		name     string
		cookie   string
		hint     bool
		nav, api want
	}{
		{"valid", valid, false,
			want{200, "", "hello alice role=admin"},
			want{200, "", "hello alice role=admin"}},
		{"expired", expired, false,
			want{401, "", "Restoring your session"},
			want{401, "", `{"message":"try refresh token"}`}},
		{"missing with refresh hint", "", true,
			want{401, "", "Restoring your session"},
			want{401, "", `{"message":"try refresh token"}`}},
		{"missing", "", false,
			want{302, "/login?redirectToPath=%2Fdocs%2Fpage%3Fq%3D1", ""},
			want{401, "", `{"message":"unauthorised"}`}},
		{"invalid signature", forged, false,
			want{302, "/login?redirectToPath=%2Fdocs%2Fpage%3Fq%3D1", ""},
			want{401, "", `{"message":"unauthorised"}`}},
		{"wrong key", wrongKey, false,
			want{302, "/login?redirectToPath=%2Fdocs%2Fpage%3Fq%3D1", ""},
			want{401, "", `{"message":"unauthorised"}`}},
		{"malformed", "not.a.jwt", false,
			want{302, "/login?redirectToPath=%2Fdocs%2Fpage%3Fq%3D1", ""},
			want{401, "", `{"message":"unauthorised"}`}},
	}
	for _, c := range cases {
		for _, mode := range []string{"navigation", "api"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				req := newRequest(t, "GET", base+"/docs/page?q=1", nil)
				w := c.api
				if mode == "navigation" {
					asNavigation(req)
					w = c.nav
				} else {
					asAPI(req)
				}
				if c.cookie != "" {
					withCookie(req, "sAccessToken", c.cookie)
				}
				if c.hint {
					withCookie(req, "sRefreshHint", "1")
				}
				got := do(t, req)
				if got.status != w.status {
					t.Fatalf("status %d, want %d (body %.200q)", got.status, w.status, got.body)
				}
				if loc := got.header.Get("Location"); loc != w.location {
					t.Errorf("Location %q, want %q", loc, w.location)
				}
				if !strings.Contains(got.body, w.body) {
					t.Errorf("body %.300q does not contain %q", got.body, w.body)
				}
				if got.status == 401 {
					if wa := got.header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, `Bearer error="invalid_token", error_description="`) {
						t.Errorf("WWW-Authenticate %q", wa)
					}
					if cc := got.header.Get("Cache-Control"); cc != "no-store" {
						t.Errorf("Cache-Control %q", cc)
					}
				}
				if c.cookie != "" && strings.Contains(got.body, c.cookie) {
					t.Errorf("the token appears in the response body")
				}
			})
		}
	}
}

func TestNavigationWithoutFetchMetadata(t *testing.T) {
	base := site(t, gateBlock)
	// An older browser: no Sec-Fetch headers, so Accept decides.
	req := newRequest(t, "GET", base+"/x", nil)
	req.Header.Set("Accept", "text/html")
	if got := do(t, req); got.status != http.StatusFound {
		t.Errorf("GET Accept: text/html without Sec-Fetch: status %d, want 302", got.status)
	}
	req = newRequest(t, "GET", base+"/x", nil)
	req.Header.Set("Accept", "*/*")
	if got := do(t, req); got.status != http.StatusUnauthorized {
		t.Errorf("GET Accept: */*: status %d, want 401", got.status)
	}
	// A form POST navigation without a session gets 303, so login is fetched with GET.
	req = asNavigation(newRequest(t, "POST", base+"/form?a=b", strings.NewReader("x=1")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	got := do(t, req)
	if got.status != http.StatusSeeOther || got.header.Get("Location") != "/login?redirectToPath=%2Fform%3Fa%3Db" {
		t.Errorf("POST navigation: %d %q, want 303 to login", got.status, got.header.Get("Location"))
	}
}

func TestBearerWinsOverCookie(t *testing.T) {
	base := site(t, gateBlock)
	req := asAPI(newRequest(t, "GET", base+"/", nil))
	req.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}))
	withCookie(req, "sAccessToken", token(t, validClaims()))
	if got := do(t, req); got.status != 200 || !strings.HasPrefix(got.body, "hello bob") {
		t.Errorf("got %d %q, want the bearer's subject bob", got.status, got.body)
	}
	// A bad bearer is not rescued by a good cookie: the header wins.
	req = asAPI(newRequest(t, "GET", base+"/", nil))
	req.Header.Set("Authorization", "Bearer garbage")
	withCookie(req, "sAccessToken", token(t, validClaims()))
	if got := do(t, req); got.status != 401 {
		t.Errorf("bad bearer + good cookie: %d, want 401", got.status)
	}
}

func TestBearerOff(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		bearer off
	}
	respond "hello {http.auth.user.id}"
`)
	req := asAPI(newRequest(t, "GET", base+"/", nil))
	req.Header.Set("Authorization", "Bearer "+token(t, validClaims()))
	if got := do(t, req); got.status != 401 {
		t.Errorf("bearer off: %d, want 401", got.status)
	}
}

func TestPublicPathsAndLogin(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		login_url /auth/login?theme=dark
		return_param next
		public /assets/* /health
	}
	respond "open {path}"
`)
	for _, p := range []string{"/auth/login", "/assets/app.css", "/health"} {
		got := do(t, asNavigation(newRequest(t, "GET", base+p, nil)))
		if got.status != 200 || got.body != "open "+p {
			t.Errorf("%s: %d %q, want it to pass", p, got.status, got.body)
		}
	}
	got := do(t, asNavigation(newRequest(t, "GET", base+"/private", nil)))
	if want := "/auth/login?theme=dark&next=%2Fprivate"; got.status != 302 || got.header.Get("Location") != want {
		t.Errorf("private: %d %q, want 302 %q", got.status, got.header.Get("Location"), want)
	}
	got = do(t, asNavigation(newRequest(t, "GET", base+"/assets2/x", nil)))
	if got.status != 302 {
		t.Errorf("/assets2/x is not under /assets/: %d, want 302", got.status)
	}
}

// rawGet sends a request target exactly as given, which net/http's client
// would normalise.
func rawGet(t *testing.T, base, target string, headers ...string) reply {
	t.Helper()
	return rawRequest(t, base, http.MethodGet, target, headers...)
}

// rawRequest is rawGet with another method (and no body).
func rawRequest(t *testing.T, base, method, target string, headers ...string) reply {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n", method, target, u.Host)
	for _, h := range headers {
		fmt.Fprintf(conn, "%s\r\n", h)
	}
	fmt.Fprint(conn, "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(body)}
}

func TestReturnPathNeverLeavesTheSite(t *testing.T) {
	base := site(t, `
	rewrite /old/* /new{path}
	session_gate {
		secret "`+testSecret+`"
	}
	respond "ok"
`)
	// The original target, before rewrite, is what the user asked for.
	got := rawGet(t, base, "/old/x?y=1", "Accept: text/html")
	if want := "/login?redirectToPath=%2Fold%2Fx%3Fy%3D1"; got.header.Get("Location") != want {
		t.Errorf("after rewrite: Location %q, want %q", got.header.Get("Location"), want)
	}
	checked := 0
	for _, line := range openRedirectPayloads(t) {
		if strings.ContainsAny(line, " \t\r\n") || !strings.HasPrefix(line, "/") {
			continue // not a request target a server can receive
		}
		got := rawGet(t, base, line, "Accept: text/html")
		if got.status == http.StatusBadRequest {
			continue // Go's server refused the target itself
		}
		loc, err := url.Parse(got.header.Get("Location"))
		if got.status != 302 || err != nil {
			t.Fatalf("%q: %d %q", line, got.status, got.header.Get("Location"))
		}
		assertSameSite(t, line, loc.Query().Get("redirectToPath"))
		checked++
	}
	if checked < 300 {
		t.Errorf("only %d payloads reached the gate", checked)
	}
	t.Logf("%d payloads sent as request targets", checked)
}

func TestIssueHeaderNeverReachesTheClient(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		public /login
	}
	header /login Session-Gate-Issue "{\"sub\":\"mallory\"}"
	respond "page"
`)
	got := do(t, asNavigation(newRequest(t, "GET", base+"/login", nil)))
	if got.status != 200 || got.header.Get("Session-Gate-Issue") != "" {
		t.Errorf("status %d, Session-Gate-Issue %q: the header must be stripped", got.status, got.header.Get("Session-Gate-Issue"))
	}
	if len(got.header.Values("Set-Cookie")) != 0 {
		t.Errorf("without a refresher no session starts, got cookies %q", got.header.Values("Set-Cookie"))
	}
}

// countingUpstream is an auth backend that answers refresh calls.
type countingUpstream struct {
	*httptest.Server
	calls chan *http.Request
}

func newRefreshUpstream(t *testing.T, status int) *countingUpstream {
	u := &countingUpstream{calls: make(chan *http.Request, 100)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls <- r.Clone(r.Context())
		http.SetCookie(w, &http.Cookie{Name: "sAccessToken", Value: "new", Path: "/"})
		w.Header().Set("Front-Token", "ft")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"status":"from upstream"}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func TestRefreshEndpointRules(t *testing.T) {
	up := newRefreshUpstream(t, 200)
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresh_upstream `+strings.TrimPrefix(up.URL, "http://")+` {
			rewrite /auth/session/refresh
			header_up rid session
		}
	}
	respond "content"
`)
	// Only POST.
	got := do(t, newRequest(t, "GET", base+"/refreshsession", nil))
	if got.status != 405 || got.header.Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow=%q, want 405 Allow: POST", got.status, got.header.Get("Allow"))
	}
	// Cross-site: refused, nothing forwarded.
	for _, h := range [][2]string{
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		req := newRequest(t, "POST", base+"/refreshsession", nil)
		req.Header.Set(h[0], h[1])
		if got := do(t, req); got.status != 403 {
			t.Errorf("%s: %s -> %d, want 403", h[0], h[1], got.status)
		}
	}
	if n := len(up.calls); n != 0 {
		t.Fatalf("refused requests reached the upstream %d times", n)
	}
	// The interstitial's no-referrer policy makes browsers send "Origin: null"
	// with its form; Sec-Fetch-Site: same-origin vouches for it. Without that,
	// a null origin is refused.
	req := asNavigation(newRequest(t, "POST", base+"/refreshsession", strings.NewReader("redirectToPath=%2F")))
	req.Header.Set("Origin", "null")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if got := do(t, req); got.status != 303 {
		t.Errorf("Origin: null with Sec-Fetch-Site: same-origin: %d, want 303", got.status)
	}
	<-up.calls
	// Same-origin fetch: proxied, rewritten, answer and cookies unchanged.
	req = asAPI(newRequest(t, "POST", base+"/refreshsession", nil))
	req.Header.Set("Origin", base)
	withCookie(req, "sRefreshToken", "rt")
	got = do(t, req)
	if got.status != 200 || got.body != `{"status":"from upstream"}` || got.header.Get("Front-Token") != "ft" {
		t.Errorf("proxied refresh: %d %q %v", got.status, got.body, got.header)
	}
	if c := got.header.Get("Set-Cookie"); !strings.HasPrefix(c, "sAccessToken=new") {
		t.Errorf("Set-Cookie %q did not come back", c)
	}
	select {
	case r := <-up.calls:
		if r.URL.Path != "/auth/session/refresh" || r.Header.Get("rid") != "session" {
			t.Errorf("upstream saw %s rid=%q", r.URL.Path, r.Header.Get("rid"))
		}
		if c, err := r.Cookie("sRefreshToken"); err != nil || c.Value != "rt" {
			t.Errorf("upstream did not get the refresh cookie")
		}
	default:
		t.Fatal("the upstream was not called")
	}
	// A <noscript> form navigation: 303 back to the return path.
	req = asNavigation(newRequest(t, "POST", base+"/refreshsession", strings.NewReader("redirectToPath=%2Fdocs%3Fa%3D1")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	got = do(t, req)
	if got.status != 303 || got.header.Get("Location") != "/docs?a=1" || !strings.HasPrefix(got.header.Get("Set-Cookie"), "sAccessToken=new") {
		t.Errorf("form refresh: %d Location=%q Set-Cookie=%q", got.status, got.header.Get("Location"), got.header.Get("Set-Cookie"))
	}
	// A hostile return path in the form is neutralised.
	req = asNavigation(newRequest(t, "POST", base+"/refreshsession", strings.NewReader("redirectToPath=%2F%2Fevil.example")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if got := do(t, req); got.header.Get("Location") != "/" {
		t.Errorf("hostile form return path: Location %q, want /", got.header.Get("Location"))
	}
}

func TestRefreshUpstreamFailureFormGoesToLogin(t *testing.T) {
	up := newRefreshUpstream(t, 401)
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresh_upstream `+strings.TrimPrefix(up.URL, "http://")+`
	}
	respond "content"
`)
	req := asNavigation(newRequest(t, "POST", base+"/refreshsession", strings.NewReader("redirectToPath=%2Fdocs")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	got := do(t, req)
	if got.status != 303 || got.header.Get("Location") != "/login?redirectToPath=%2Fdocs" {
		t.Errorf("failed form refresh: %d %q, want 303 to login", got.status, got.header.Get("Location"))
	}
	// The script's fetch sees the upstream's own 401.
	got = do(t, asAPI(newRequest(t, "POST", base+"/refreshsession", nil)))
	if got.status != 401 || got.body != `{"status":"from upstream"}` {
		t.Errorf("API refresh: %d %q, want the upstream's 401 unchanged", got.status, got.body)
	}
}

func TestAdaptOrdersGateBeforeOtherHandlers(t *testing.T) {
	// No "order" line, and the gate written after the others.
	cfg := `
http://localhost:9999 {
	reverse_proxy /api/* 127.0.0.1:1
	respond /hi "hi"
	file_server
	route /r {
		respond "r"
	}
	handle /h {
		respond "h"
	}
	session_gate {
		secret "` + testSecret + `"
	}
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Routes []struct {
								Handle []map[string]any `json:"handle"`
							} `json:"routes"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, srv := range doc.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			for _, h := range r.Handle {
				for _, sub := range h.Routes {
					for _, hh := range sub.Handle {
						order = append(order, fmt.Sprint(hh["handler"]))
					}
				}
			}
		}
	}
	if len(order) < 5 || order[0] != "session_gate" {
		t.Fatalf("handler order %v: session_gate must come first", order)
	}
}

func TestConfigErrorsNameTheDirective(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"secrt x", `unrecognized subdirective "secrt"`},
		{"bearer maybe", "bearer"},
		{"leeway soon", "leeway"},
		{"refresher {\n store mongo\n }", "store"},
		{"token_cache lots", "token_cache"},
		{"refresh_upstream", "upstream"},
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(gateSite(c.body)), nil)
		if err == nil || !strings.Contains(err.Error(), "session_gate") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming session_gate and %q", c.body, err, c.want)
		}
	}
}

func TestProvisionErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	badPEM := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(badPEM, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ body, want string }{
		{"secret short", "32 bytes"},
		{"cookie sAccessToken", "no key"},
		{"public_key " + badPEM, "public_key"},
		{"secret " + testSecret + "\nalgorithms none", "none"},
		{"secret " + testSecret + "\nlogin_url //evil.example/login", "login_url"},
	} {
		err := validateCaddyfile(t, gateSite(c.body))
		if err == nil || !strings.Contains(err.Error(), "session_gate") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming session_gate and %q", c.body, err, c.want)
		}
	}
}

// validateCaddyfile does what "caddy validate" does: adapt, then provision
// every module without starting a server.
func validateCaddyfile(t *testing.T, text string) error {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), nil)
	if err != nil {
		return err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// gateSite is a one-site Caddyfile whose session_gate block holds settings.
func gateSite(settings string) string {
	return "http://localhost:9999 {\n\tsession_gate {\n" + settings + "\n\t}\n\trespond ok\n}\n"
}

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{
		"gzip, deflate, br, zstd": true,
		"br;q=1.0, gzip;q=0.8":    true,
		"GZIP":                    true,
		"gzip;q=0":                false,
		"gzip; q=0.000":           false,
		"gzip;q=0.001":            true,
		"deflate, br":             false,
		"":                        false,
		"x-gzip-not":              false,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if v != "" {
			r.Header.Set("Accept-Encoding", v)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: %v, want %v", v, got, want)
		}
	}
}

// requests_total counts each request once, under its verdict; a valid token
// that an authorize block refuses is "forbidden", not "valid".
func TestMetricsCountVerdicts(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		authorize /admin/* {
			role admin
		}
	}
	respond "hello"
`)
	before := map[string]float64{}
	for _, v := range []string{"valid", "expired", "missing", "invalid", "forbidden"} {
		before[v] = testutil.ToFloat64(verdictsTotal.WithLabelValues(v))
	}
	send := func(path, cookie string, want int) {
		req := asAPI(newRequest(t, "GET", base+path, nil))
		if cookie != "" {
			withCookie(req, "sAccessToken", cookie)
		}
		if got := do(t, req); got.status != want {
			t.Errorf("%s: %d %q, want %d", path, got.status, got.body, want)
		}
	}
	user := token(t, jwt.MapClaims{"sub": "bob", "role": "user", "exp": time.Now().Add(time.Hour).Unix()})
	send("/", token(t, validClaims()), 200)
	send("/admin/x", token(t, validClaims()), 200)
	send("/", user, 200)
	send("/admin/x", user, 403)
	send("/admin/y", user, 403)
	send("/", token(t, expiredClaims()), 401)
	send("/", "", 401)
	send("/", "garbage", 401)
	for v, want := range map[string]float64{"valid": 3, "forbidden": 2, "expired": 1, "missing": 1, "invalid": 1} {
		if got := testutil.ToFloat64(verdictsTotal.WithLabelValues(v)) - before[v]; got != want {
			t.Errorf("%s: counted %v, want %v", v, got, want)
		}
	}
}

func TestSecretPlaceholdersExpandAtProvision(t *testing.T) {
	t.Setenv("SG_TEST_SECRET", testSecret)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"secret {env.SG_TEST_SECRET}", "secret {file." + file + "}", "secret base64:" + "dGVzdC1zZWNyZXQtb2YtYXQtbGVhc3QtdGhpcnR5LXR3by1ieXRlcyE="} {
		if err := validateCaddyfile(t, gateSite(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"secret {env.SG_TEST_UNSET_SECRET}", "secret {file./nonexistent/secret}"} {
		err := validateCaddyfile(t, gateSite(bad))
		if err == nil || !strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want an error naming the secret", bad, err)
		} else if strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: the error repeats the secret", bad)
		}
	}
}

// TestSessionExpiredStatus: session_expired_status sets the status of every
// answer to an expired session, the API's "try refresh token", htmx's
// HX-Refresh, the interstitial and a sign-out everywhere with an expired
// token, as SuperTokens v3 front ends expect 440; the bodies and headers
// stay. Answers to no session, a forged token or a refused refresh stay 401.
func TestSessionExpiredStatus(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		session_expired_status 440
		refresher {
			store memory
		}
	}
	respond "hello"
`)
	expired := token(t, expiredClaims())
	send := func(req *http.Request, cookie string) reply {
		if cookie != "" {
			withCookie(req, "sAccessToken", cookie)
		}
		return do(t, req)
	}
	htmx := asAPI(newRequest(t, "GET", base+"/fragment", nil))
	htmx.Header.Set("HX-Request", "true")
	for _, c := range []struct {
		what   string
		got    reply
		status int
		body   string // "" when the body is a page
		header string // a header the answer must carry
	}{
		{"expired, api", send(asAPI(newRequest(t, "GET", base+"/x", nil)), expired), 440, `{"message":"try refresh token"}`, "Www-Authenticate"},
		{"expired, htmx", send(htmx, expired), 440, `{"message":"try refresh token"}`, "Hx-Refresh"},
		{"expired, navigation", send(asNavigation(newRequest(t, "GET", base+"/x", nil)), expired), 440, "", "Content-Security-Policy"},
		{"expired, sign-out everywhere", send(asAPI(newRequest(t, "POST", base+"/signout?everywhere=1", nil)), expired), 440, `{"message":"try refresh token"}`, "Www-Authenticate"},
		{"refresh hint only, api", send(withCookie(asAPI(newRequest(t, "GET", base+"/x", nil)), "sRefreshHint", "1"), ""), 440, `{"message":"try refresh token"}`, "Www-Authenticate"},
		{"missing, api", send(asAPI(newRequest(t, "GET", base+"/x", nil)), ""), 401, `{"message":"unauthorised"}`, "Www-Authenticate"},
		{"forged, api", send(asAPI(newRequest(t, "GET", base+"/x", nil)), "garbage"), 401, `{"message":"unauthorised"}`, "Www-Authenticate"},
		{"refresh refused", send(withCookie(asAPI(newRequest(t, "POST", base+"/refreshsession", nil)), "sRefreshToken", "forged"), ""), 401, `{"message":"unauthorised"}`, "Www-Authenticate"},
	} {
		if c.got.status != c.status || (c.body != "" && c.got.body != c.body) || c.got.header.Get(c.header) == "" {
			t.Errorf("%s: %d %q (%s %q), want %d %q with %s", c.what, c.got.status, c.got.body, c.header, c.got.header.Get(c.header), c.status, c.body, c.header)
		}
	}
}
