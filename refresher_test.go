package sessiongate

// The internal refresher through real Caddy (docs/behaviour.md, "The refresh endpoint"): in-process Caddy
// (caddytest) for the HTTP answers, and the built binary, run as separate
// processes, for what only several processes can show: two instances on one
// Redis, a bolt file across a restart and a reload, a Redis outage.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/session-gate/session_gate/internal/caddyproc"
	"github.com/session-gate/session_gate/internal/oidctest"
	"github.com/session-gate/session_gate/internal/redistest"
)

// TestMain removes the Caddy binary that the process tests build (once, on
// first use, so that runs without them do not pay for the build).
func TestMain(m *testing.M) {
	code := m.Run()
	if builtCaddy.dir != "" {
		_ = os.RemoveAll(builtCaddy.dir)
	}
	_ = os.RemoveAll(caddyStorage())
	oidctest.Cleanup()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Helpers shared by the in-process and the process tests.

// defaultIssue is what the test login backend starts a session with unless
// the request says otherwise.
const defaultIssue = `{"sub":"alice","claims":{"role":"x"}}`

// issueBackend is the site's login handler: it answers with the
// Session-Gate-Issue header, whose value the request can choose through
// X-Test-Issue (for malformed payloads).
func issueBackend(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issue := defaultIssue
		if v, ok := r.Header["X-Test-Issue"]; ok {
			issue = v[0]
		}
		w.Header().Set("Session-Gate-Issue", issue)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("signed in"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// refresherSite is a site body: the gate with an internal refresher (the
// given refresher settings), /login proxied to the issue backend, and /me
// showing who the gate let through.
func refresherSite(backend, refresherSettings string) string {
	return `
	session_gate {
		secret "` + testSecret + `"
		refresher {
` + refresherSettings + `
		}
	}
	reverse_proxy /login ` + backend + `
	respond /me "user={http.auth.user.id} role={http.auth.user.role}"
`
}

// cookieMap parses a response's Set-Cookie headers; a name set twice fails
// the test (the browser would keep only one, and the test could not say which).
func cookieMap(t *testing.T, h http.Header) map[string]*http.Cookie {
	t.Helper()
	m := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if _, dup := m[c.Name]; dup {
			t.Errorf("cookie %s set twice: %q", c.Name, h.Values("Set-Cookie"))
		}
		m[c.Name] = c
	}
	return m
}

// startSession GETs /login (optionally with a chosen issue payload) and
// returns the answer and its cookies.
func startSession(t *testing.T, base string, issue *string) (reply, map[string]*http.Cookie) {
	t.Helper()
	req := asNavigation(newRequest(t, "GET", base+"/login", nil))
	if issue != nil {
		req.Header["X-Test-Issue"] = []string{*issue}
	}
	got := do(t, req)
	return got, cookieMap(t, got.header)
}

// mustStart starts a session and returns its access and refresh tokens.
func mustStart(t *testing.T, base string) (access, refresh string) {
	t.Helper()
	got, c := startSession(t, base, nil)
	if got.status != 200 || c["sAccessToken"] == nil || c["sRefreshToken"] == nil {
		t.Fatalf("session start: %d %q cookies %q", got.status, got.body, got.header.Values("Set-Cookie"))
	}
	return c["sAccessToken"].Value, c["sRefreshToken"].Value
}

// postRefresh is the interstitial's fetch to refresh_path with a refresh
// cookie ("" sends none).
func postRefresh(t *testing.T, base, refreshToken string) (reply, map[string]*http.Cookie) {
	t.Helper()
	req := asAPI(newRequest(t, "POST", base+"/refreshsession", nil))
	if refreshToken != "" {
		withCookie(req, "sRefreshToken", refreshToken)
	}
	got := do(t, req)
	return got, cookieMap(t, got.header)
}

// wantRotated checks a successful rotation and returns the new tokens.
func wantRotated(t *testing.T, what string, got reply, c map[string]*http.Cookie) (access, refresh string) {
	t.Helper()
	if got.status != 200 || got.body != `{"status":"OK"}` {
		t.Fatalf("%s: %d %q, want 200 {\"status\":\"OK\"}", what, got.status, got.body)
	}
	if c["sAccessToken"] == nil || c["sAccessToken"].Value == "" || c["sRefreshToken"] == nil || c["sRefreshToken"].Value == "" {
		t.Fatalf("%s: cookies %q, want a new access and a rotated refresh cookie", what, got.header.Values("Set-Cookie"))
	}
	return c["sAccessToken"].Value, c["sRefreshToken"].Value
}

// wantRefused checks a 401 from the refresh endpoint that clears the cookies.
func wantRefused(t *testing.T, what string, got reply, c map[string]*http.Cookie) {
	t.Helper()
	if got.status != 401 {
		t.Fatalf("%s: %d %q, want 401", what, got.status, got.body)
	}
	if wa := got.header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, `Bearer error="invalid_token"`) {
		t.Errorf("%s: WWW-Authenticate %q", what, wa)
	}
	wantCleared(t, what, c)
}

// wantCleared checks that the three session cookies are deleted, each on the
// path it was set on.
func wantCleared(t *testing.T, what string, c map[string]*http.Cookie) {
	t.Helper()
	for name, path := range map[string]string{"sAccessToken": "/", "sRefreshToken": "/refreshsession", "sRefreshHint": "/"} {
		k := c[name]
		switch {
		case k == nil:
			t.Errorf("%s: cookie %s not cleared (no Set-Cookie)", what, name)
		case k.MaxAge >= 0 || k.Value != "" || k.Path != path:
			t.Errorf("%s: cookie %s = %q Max-Age %d Path %q, want cleared on %s", what, name, k.Value, k.MaxAge, k.Path, path)
		}
	}
}

// whoami GETs /me as an API call with an access token cookie.
func whoami(t *testing.T, base, access string) reply {
	t.Helper()
	return do(t, withCookie(asAPI(newRequest(t, "GET", base+"/me", nil)), "sAccessToken", access))
}

func wantUser(t *testing.T, what, base, access, want string) {
	t.Helper()
	if got := whoami(t, base, access); got.status != 200 || got.body != want {
		t.Fatalf("%s: /me %d %q, want 200 %q", what, got.status, got.body, want)
	}
}

// hsClaims verifies an HS256 token with the test secret and returns its claims.
func hsClaims(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatalf("minted access token does not verify: %v", err)
	}
	return parsed.Claims.(jwt.MapClaims)
}

// ---------------------------------------------------------------------------
// In-process Caddy.

func TestRefresherSessionStart(t *testing.T) {
	backend := issueBackend(t)
	base := site(t, refresherSite(backend, `
			store memory
			refresh_ttl 1h
			access_ttl 5m`))

	got, c := startSession(t, base, nil)
	if got.status != 200 || got.body != "signed in" {
		t.Fatalf("login: %d %q, want the site's 200", got.status, got.body)
	}
	if v := got.header.Values("Session-Gate-Issue"); len(v) != 0 {
		t.Errorf("Session-Gate-Issue reached the client: %q", v)
	}
	for name, path := range map[string]string{"sAccessToken": "/", "sRefreshToken": "/refreshsession", "sRefreshHint": "/"} {
		k := c[name]
		if k == nil {
			t.Fatalf("no %s cookie; Set-Cookie %q", name, got.header.Values("Set-Cookie"))
		}
		if k.Path != path || !k.HttpOnly || k.SameSite != http.SameSiteLaxMode || k.Secure {
			t.Errorf("%s: Path %q HttpOnly %v SameSite %v Secure %v, want Path=%s HttpOnly SameSite=Lax, no Secure over http",
				name, k.Path, k.HttpOnly, k.SameSite, k.Secure, path)
		}
		if k.MaxAge < 3600-10 || k.MaxAge > 3600 {
			t.Errorf("%s: Max-Age %d, want about refresh_ttl (3600)", name, k.MaxAge)
		}
	}
	if c["sRefreshHint"].Value != "1" {
		t.Errorf("sRefreshHint = %q, want 1", c["sRefreshHint"].Value)
	}
	access := c["sAccessToken"].Value
	claims := hsClaims(t, access)
	if claims["sub"] != "alice" || claims["role"] != "x" || claims["sid"] == "" || claims["sid"] == nil {
		t.Errorf("access token claims %v, want sub alice, role x and a sid", claims)
	}
	if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) > 5*time.Minute || time.Until(exp.Time) < 4*time.Minute {
		t.Errorf("access token exp %v, want about access_ttl (5m) from now", exp)
	}
	wantUser(t, "minted access token", base, access, "user=alice role=x")
	// A reserved claim in the payload never overrides what the refresher sets.
	over := `{"sub":"bob","claims":{"sub":"root","exp":1,"role":"y"}}`
	_, c2 := startSession(t, base, &over)
	if c2["sAccessToken"] == nil {
		t.Fatal("no session for a payload with reserved claims")
	}
	wantUser(t, "reserved claims dropped", base, c2["sAccessToken"].Value, "user=bob role=y")

	for name, issue := range map[string]string{
		"malformed JSON": `{"sub":"alice"`,
		"missing sub":    `{"claims":{"role":"x"}}`,
		"empty sub":      `{"sub":""}`,
		"not an object":  `["alice"]`,
		"sub not string": `{"sub":42}`,
		// Names are exact: encoding/json alone would take any case, and the
		// last of two spellings.
		"SUB in capitals":    `{"SUB":"mallory"}`,
		"Sub beside sub":     `{"sub":"alice","Sub":"mallory"}`,
		"sub given twice":    `{"sub":"alice","sub":"mallory"}`,
		"Claims in capitals": `{"sub":"alice","Claims":{"role":"admin"}}`,
		"claims given twice": `{"sub":"alice","claims":{"role":"x"},"claims":{"role":"admin"}}`,
		"trailing data":      `{"sub":"alice"} {"sub":"mallory"}`,
	} {
		t.Run(name, func(t *testing.T) {
			got, c := startSession(t, base, &issue)
			if got.status != http.StatusBadGateway {
				t.Errorf("status %d, want 502", got.status)
			}
			if len(c) != 0 {
				t.Errorf("cookies set: %q", got.header.Values("Set-Cookie"))
			}
			if v := got.header.Values("Session-Gate-Issue"); len(v) != 0 {
				t.Errorf("Session-Gate-Issue reached the client: %q", v)
			}
			if strings.Contains(got.body, "signed in") {
				t.Errorf("the site's body came through with the error: %q", got.body)
			}
		})
	}
}

// fakeClock makes the gates of the configs this test loads from now on
// (verifier, cache, refresher) go by a clock the test moves, and returns the
// function that moves it.
func fakeClock(t *testing.T) (advance func(time.Duration)) {
	t.Helper()
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	testClock.Store(&now)
	t.Cleanup(func() { testClock.Store(nil) })
	return func(d time.Duration) { offset.Add(int64(d)) }
}

func TestRefresherRotationGraceAndTheft(t *testing.T) {
	advance := fakeClock(t)
	backend := issueBackend(t)
	base := site(t, refresherSite(backend, `
			store memory
			refresh_ttl 1h
			reuse_grace 1s`)) // the clock is the test's: a slow machine cannot outlast it

	_, r0 := mustStart(t, base)
	got, c := postRefresh(t, base, r0)
	a1, r1 := wantRotated(t, "first refresh", got, c)
	if r1 == r0 {
		t.Fatal("the refresh token was not rotated")
	}
	if ct, cc := got.header.Get("Content-Type"), got.header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("refresh answer Content-Type %q Cache-Control %q", ct, cc)
	}
	if k := c["sRefreshToken"]; k.Path != "/refreshsession" || !k.HttpOnly || k.MaxAge < 3590 {
		t.Errorf("rotated refresh cookie Path %q HttpOnly %v Max-Age %d", k.Path, k.HttpOnly, k.MaxAge)
	}
	if k := c["sAccessToken"]; k.Path != "/" || !k.HttpOnly || k.SameSite != http.SameSiteLaxMode || k.MaxAge < 3590 {
		t.Errorf("new access cookie Path %q HttpOnly %v SameSite %v Max-Age %d", k.Path, k.HttpOnly, k.SameSite, k.MaxAge)
	}
	wantUser(t, "refreshed access token", base, a1, "user=alice role=x")

	// The old token again, within the grace: an access token, no new refresh cookie.
	got, c = postRefresh(t, base, r0)
	if got.status != 200 || got.body != `{"status":"OK"}` || c["sAccessToken"] == nil {
		t.Fatalf("old token within grace: %d %q %q, want 200 with an access cookie", got.status, got.body, got.header.Values("Set-Cookie"))
	}
	if k, ok := c["sRefreshToken"]; ok {
		t.Errorf("old token within grace set a refresh cookie %q (Max-Age %d): the client must keep the rotated one", k.Value, k.MaxAge)
	}
	wantUser(t, "grace access token", base, c["sAccessToken"].Value, "user=alice role=x")

	// Past the grace, r1 never having come back, r0 is a client whose reply
	// was lost: it rotates again. r1 is dead now: whoever presents it is a
	// thief, and the whole session is revoked, so the newest token is
	// refused too.
	advance(time.Second + time.Millisecond)
	got, c = postRefresh(t, base, r0)
	_, r1b := wantRotated(t, "old token past grace, its reply lost", got, c)
	got, c = postRefresh(t, base, r1)
	wantRefused(t, "the successor the re-rotation killed", got, c)
	got, c = postRefresh(t, base, r1b)
	wantRefused(t, "newest token after theft", got, c)

	// No cookie, garbage, a well-formed token of another deployment.
	got, c = postRefresh(t, base, "")
	wantRefused(t, "no refresh cookie", got, c)
	got, c = postRefresh(t, base, "garbage")
	wantRefused(t, "garbage refresh cookie", got, c)
	got, c = postRefresh(t, base, strings.Repeat("A", 96))
	wantRefused(t, "untagged refresh cookie", got, c)

	// A fresh session is untouched by all this.
	_, r := mustStart(t, base)
	got, c = postRefresh(t, base, r)
	wantRotated(t, "another session", got, c)

	// Only POST, only same-site.
	got = do(t, withCookie(newRequest(t, "GET", base+"/refreshsession", nil), "sRefreshToken", r))
	if got.status != 405 || len(got.header.Values("Set-Cookie")) != 0 {
		t.Errorf("GET refresh: %d %q", got.status, got.header.Values("Set-Cookie"))
	}
	req := withCookie(asAPI(newRequest(t, "POST", base+"/refreshsession", nil)), "sRefreshToken", r)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if got := do(t, req); got.status != 403 || len(got.header.Values("Set-Cookie")) != 0 {
		t.Errorf("cross-site refresh: %d %q", got.status, got.header.Values("Set-Cookie"))
	}
}

func TestRefresherNoscriptFormRefresh(t *testing.T) {
	backend := issueBackend(t)
	base := site(t, refresherSite(backend, "\t\t\tstore memory"))
	_, r0 := mustStart(t, base)
	form := func(tok string) (reply, map[string]*http.Cookie) {
		req := asNavigation(newRequest(t, "POST", base+"/refreshsession", strings.NewReader("redirectToPath=%2Fdocs%3Fa%3D1")))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		withCookie(req, "sRefreshToken", tok)
		got := do(t, req)
		return got, cookieMap(t, got.header)
	}
	got, c := form(r0)
	if got.status != 303 || got.header.Get("Location") != "/docs?a=1" || c["sAccessToken"] == nil || c["sRefreshToken"] == nil {
		t.Fatalf("form refresh: %d Location %q cookies %q, want 303 to /docs?a=1 with new cookies",
			got.status, got.header.Get("Location"), got.header.Values("Set-Cookie"))
	}
	got, c = form("garbage")
	if got.status != 303 || got.header.Get("Location") != "/login?redirectToPath=%2Fdocs%3Fa%3D1" {
		t.Fatalf("failed form refresh: %d Location %q, want 303 to login", got.status, got.header.Get("Location"))
	}
	wantCleared(t, "failed form refresh", c)
}

func TestSignoutRevokesTheSession(t *testing.T) {
	backend := issueBackend(t)
	base := site(t, refresherSite(backend, `
			store memory
			refresh_ttl 1h`))
	signout := func(access string, nav bool) (reply, map[string]*http.Cookie) {
		req := newRequest(t, "POST", base+"/signout", nil)
		if nav {
			asNavigation(req)
		} else {
			asAPI(req)
		}
		if access != "" {
			withCookie(req, "sAccessToken", access)
		}
		got := do(t, req)
		return got, cookieMap(t, got.header)
	}

	t.Run("navigation", func(t *testing.T) {
		a, r := mustStart(t, base)
		got, c := signout(a, true)
		if got.status != 303 || got.header.Get("Location") != "/login" {
			t.Fatalf("signout: %d Location %q, want 303 to /login", got.status, got.header.Get("Location"))
		}
		wantCleared(t, "signout", c)
		got, c = postRefresh(t, base, r)
		wantRefused(t, "refresh after signout", got, c)
	})

	t.Run("api", func(t *testing.T) {
		a, r := mustStart(t, base)
		got, c := signout(a, false)
		if got.status != 200 || got.body != `{"status":"OK"}` {
			t.Fatalf("signout: %d %q, want 200", got.status, got.body)
		}
		wantCleared(t, "signout", c)
		got, c = postRefresh(t, base, r)
		wantRefused(t, "refresh after signout", got, c)
	})

	t.Run("expired token", func(t *testing.T) {
		a, r := mustStart(t, base)
		sid, _ := hsClaims(t, a)["sid"].(string)
		if sid == "" {
			t.Fatal("no sid in the access token")
		}
		claims := func() jwt.MapClaims {
			return jwt.MapClaims{"sub": "alice", "sid": sid, "iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-time.Minute).Unix()}
		}
		// A token naming the session but signed by someone else revokes nothing.
		forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims()).SignedString([]byte("another-secret-of-at-least-32-bytes!!"))
		if err != nil {
			t.Fatal(err)
		}
		got, c := signout(forged, false)
		if got.status != 200 {
			t.Fatalf("signout with a forged token: %d %q", got.status, got.body)
		}
		wantCleared(t, "signout with a forged token", c)
		got, c = postRefresh(t, base, r)
		_, r = wantRotated(t, "refresh after a forged signout", got, c)

		// A genuine token past its exp signs out.
		expired := token(t, claims())
		if got := whoami(t, base, expired); got.status != 401 || !strings.Contains(got.body, "try refresh token") {
			t.Fatalf("the minted token is not seen as expired: %d %q", got.status, got.body)
		}
		got, c = signout(expired, false)
		if got.status != 200 {
			t.Fatalf("signout with an expired token: %d %q", got.status, got.body)
		}
		wantCleared(t, "signout with an expired token", c)
		got, c = postRefresh(t, base, r)
		wantRefused(t, "refresh after signout with an expired token", got, c)
	})

	t.Run("no token", func(t *testing.T) {
		got, c := signout("", false)
		if got.status != 200 {
			t.Fatalf("signout without a session: %d %q, want 200", got.status, got.body)
		}
		wantCleared(t, "signout without a session", c)
	})
}

// TestSignoutWithAnExpiredToken: an expired access token (its signature
// checks) still signs its own session out, but never every session of the
// person: everywhere=1 needs an unexpired token, and otherwise gets the
// expired answer (401 "try refresh token", or the interstitial, which
// refreshes and sends the sign-out again) with nothing revoked. A token a
// year old must not sign anyone out on other devices.
func TestSignoutWithAnExpiredToken(t *testing.T) {
	backend := issueBackend(t)
	base := site(t, refresherSite(backend, `
			store memory
			refresh_ttl 1h`))
	expiredFor := func(access string, age time.Duration) string {
		sid, _ := hsClaims(t, access)["sid"].(string)
		if sid == "" {
			t.Fatal("no sid in the access token")
		}
		return token(t, jwt.MapClaims{"sub": "alice", "sid": sid, "iat": time.Now().Add(-age - time.Hour).Unix(), "exp": time.Now().Add(-age).Unix()})
	}
	signout := func(target, access string, nav bool) reply {
		req := newRequest(t, "POST", base+target, nil)
		if nav {
			asNavigation(req)
		} else {
			asAPI(req)
		}
		return do(t, withCookie(req, "sAccessToken", access))
	}
	// stillLive refreshes each session and returns the rotated refresh tokens.
	stillLive := func(what string, refreshTokens ...string) []string {
		t.Helper()
		var next []string
		for i, r := range refreshTokens {
			got, c := postRefresh(t, base, r)
			_, rotated := wantRotated(t, fmt.Sprintf("%s: session %d", what, i), got, c)
			next = append(next, rotated)
		}
		return next
	}

	for _, c := range []struct {
		name string
		age  time.Duration
		nav  bool
	}{
		{"api, a minute old", time.Minute, false},
		{"api, a year old", 365 * 24 * time.Hour, false},
		{"navigation, a minute old", time.Minute, true},
	} {
		t.Run("everywhere: "+c.name, func(t *testing.T) {
			phone, phoneRefresh := mustStart(t, base)
			_, laptopRefresh := mustStart(t, base)
			got := signout("/signout?everywhere=1", expiredFor(phone, c.age), c.nav)
			if got.status != http.StatusUnauthorized {
				t.Fatalf("status %d %q, want 401", got.status, got.body)
			}
			if c.nav && !strings.Contains(got.header.Get("Content-Type"), "text/html") {
				t.Errorf("navigation: Content-Type %q, want the interstitial", got.header.Get("Content-Type"))
			}
			if !c.nav && got.body != `{"message":"try refresh token"}` {
				t.Errorf("api: body %q, want try refresh token", got.body)
			}
			if cleared := cookieMap(t, got.header); len(cleared) != 0 {
				t.Errorf("cookies touched: %q", got.header.Values("Set-Cookie"))
			}
			stillLive("after a refused sign-out everywhere", phoneRefresh, laptopRefresh)
		})
	}

	t.Run("without everywhere: only its own session", func(t *testing.T) {
		phone, phoneRefresh := mustStart(t, base)
		_, laptopRefresh := mustStart(t, base)
		got := signout("/signout", expiredFor(phone, 365*24*time.Hour), false)
		if got.status != 200 {
			t.Fatalf("signout: %d %q, want 200", got.status, got.body)
		}
		wantCleared(t, "signout", cookieMap(t, got.header))
		got, c := postRefresh(t, base, phoneRefresh)
		wantRefused(t, "the signed-out session", got, c)
		stillLive("the other device", laptopRefresh)
	})

	t.Run("everywhere with an unexpired token", func(t *testing.T) {
		phone, phoneRefresh := mustStart(t, base)
		_, laptopRefresh := mustStart(t, base)
		if got := signout("/signout?everywhere=1", phone, false); got.status != 200 {
			t.Fatalf("signout: %d %q, want 200", got.status, got.body)
		}
		for what, r := range map[string]string{"phone": phoneRefresh, "laptop": laptopRefresh} {
			got, c := postRefresh(t, base, r)
			wantRefused(t, what+" after sign-out everywhere", got, c)
		}
	})
}

// writePrivateKey writes key as a PKCS#8 PEM file in a temp dir.
func writePrivateKey(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRefresherPrivateKeyAndJWKS(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	backend := issueBackend(t)
	for _, c := range []struct {
		name, alg, kid string
		key            any
	}{
		{"Ed25519", "EdDSA", "", edKey},
		{"P-256 with kid", "ES256", "k1", ecKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			pemFile := writePrivateKey(t, c.key)
			// No secret anywhere: the gate verifies with the refresher's public key.
			base := site(t, `
	session_gate {
		refresher {
			private_key `+pemFile+` `+c.kid+`
			jwks_path /.well-known/jwks.json
			store memory
		}
	}
	reverse_proxy /login `+backend+`
	respond /me "user={http.auth.user.id} role={http.auth.user.role}"
`)
			access, refresh := mustStart(t, base)
			wantUser(t, "minted token", base, access, "user=alice role=x")
			got, cookies := postRefresh(t, base, refresh)
			refreshed, _ := wantRotated(t, "refresh", got, cookies)
			wantUser(t, "refreshed token", base, refreshed, "user=alice role=x")
			// An HS256 token is refused: the gate has no secret.
			if got := whoami(t, base, token(t, validClaims())); got.status != 401 {
				t.Errorf("HS256 token with no secret configured: %d, want 401", got.status)
			}

			got = do(t, newRequest(t, "GET", base+"/.well-known/jwks.json", nil))
			if got.status != 200 || got.header.Get("Content-Type") != "application/jwk-set+json" {
				t.Fatalf("jwks: %d %q %q", got.status, got.header.Get("Content-Type"), got.body)
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal([]byte(got.body), &doc); err != nil || len(doc.Keys) != 1 {
				t.Fatalf("jwks body %q: %v", got.body, err)
			}
			if _, private := doc.Keys[0]["d"]; private {
				t.Fatal("the JWK Set holds the private key")
			}
			kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(got.body))
			if err != nil {
				t.Fatalf("keyfunc: %v", err)
			}
			for _, tok := range []string{access, refreshed} {
				parsed, err := jwt.Parse(tok, kf.Keyfunc, jwt.WithValidMethods([]string{c.alg}))
				if err != nil {
					t.Fatalf("a minted token does not verify with the published JWK Set: %v", err)
				}
				if sub, _ := parsed.Claims.GetSubject(); sub != "alice" {
					t.Errorf("sub %q", sub)
				}
				if c.kid != "" && parsed.Header["kid"] != c.kid {
					t.Errorf("kid header %v, want %s", parsed.Header["kid"], c.kid)
				}
			}
			if got := do(t, newRequest(t, "POST", base+"/.well-known/jwks.json", nil)); got.status != 405 {
				t.Errorf("POST jwks: %d, want 405", got.status)
			}
		})
	}

	t.Run("HMAC secret", func(t *testing.T) {
		for _, body := range []string{
			"secret " + testSecret + "\nrefresher {\nstore memory\njwks_path /.well-known/jwks.json\n}",
			"refresher {\nsecret " + testSecret + "\nstore memory\njwks_path /.well-known/jwks.json\n}",
		} {
			err := validateCaddyfile(t, gateSite(body))
			if err == nil || !strings.Contains(err.Error(), "jwks_path") {
				t.Errorf("jwks_path with an HMAC secret: error %v, want one naming jwks_path", err)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// The built binary, run as separate processes.

// builtCaddy is ./cmd/caddy, built once per test binary.
var builtCaddy struct {
	once     sync.Once
	dir, bin string
	err      error
}

func caddyBinary(t *testing.T) string {
	t.Helper()
	builtCaddy.once.Do(func() {
		builtCaddy.dir, builtCaddy.err = os.MkdirTemp("", "session_gate-caddy-")
		if builtCaddy.err != nil {
			return
		}
		began := time.Now()
		builtCaddy.bin, builtCaddy.err = caddyproc.Build(builtCaddy.dir)
		t.Logf("built ./cmd/caddy in %v", time.Since(began).Round(time.Millisecond))
	})
	if builtCaddy.err != nil {
		t.Fatal(builtCaddy.err)
	}
	return builtCaddy.bin
}

// caddyProcess is one Caddy instance run from the built binary, with its own
// admin and HTTP ports and its own data and config directories. Its output
// goes to a log file that a failing test prints.
type caddyProcess struct {
	*caddyproc.Caddy
	t         *testing.T
	name      string
	config    string
	httpPort  int
	adminPort int
}

// runCaddy writes a Caddyfile around siteBody and starts Caddy with it. The
// instance is stopped when the test ends.
func runCaddy(t *testing.T, name, siteBody string) *caddyProcess {
	t.Helper()
	c := newCaddyProcess(t, name)
	c.writeConfig(siteBody)
	c.start()
	return c
}

// newCaddyProcess prepares an instance (ports, directories, the log shown
// when the test fails) without writing its config or starting it.
func newCaddyProcess(t *testing.T, name string) *caddyProcess {
	t.Helper()
	dir := t.TempDir()
	c := &caddyProcess{t: t, name: name, config: filepath.Join(dir, "Caddyfile"), httpPort: freePort(t), adminPort: freePort(t)}
	c.Caddy = &caddyproc.Caddy{Bin: caddyBinary(t), Dir: dir, Config: c.config, AdminAddr: c.adminAddr()}
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("log of caddy %s:\n%s", c.name, c.LogTail(12000))
		}
	})
	return c
}

func (c *caddyProcess) base() string { return fmt.Sprintf("http://127.0.0.1:%d", c.httpPort) }

func (c *caddyProcess) adminAddr() string { return fmt.Sprintf("localhost:%d", c.adminPort) }

func (c *caddyProcess) writeConfig(siteBody string) {
	c.t.Helper()
	cfg := fmt.Sprintf(`{
	admin %s
	http_port %d
	https_port %d
	auto_https off
	persist_config off
	storage file_system %s
}
http://:%d {
%s
}
`, c.adminAddr(), c.httpPort, freePort(c.t), filepath.Join(c.Dir, "storage"), c.httpPort, siteBody)
	if err := os.WriteFile(c.config, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// caddyCommand runs a caddy subcommand with the instance's environment.
func (c *caddyProcess) caddyCommand(ctx context.Context, args ...string) *exec.Cmd {
	return c.Command(ctx, args...)
}

// start runs `caddy run` and waits until the site answers.
func (c *caddyProcess) start() {
	c.t.Helper()
	client := &http.Client{Timeout: time.Second}
	err := c.Start(20*time.Second, func() error {
		resp, err := client.Get(c.base() + "/me")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	if err != nil {
		c.t.Fatalf("caddy %s: %v", c.name, err)
	}
}

// stop runs `caddy stop` against the admin API and waits for the process to
// exit, so that its bolt file is closed.
func (c *caddyProcess) stop() {
	c.t.Helper()
	if err := c.Stop(); err != nil {
		c.t.Fatalf("caddy %s: %v", c.name, err)
	}
}

// reload gives the running instance a new site body through `caddy reload`.
func (c *caddyProcess) reload(siteBody string, force bool) {
	c.t.Helper()
	c.writeConfig(siteBody)
	if err := c.Reload(force); err != nil {
		c.t.Fatalf("caddy %s: %v", c.name, err)
	}
}

// kill ends the process if it still runs: SIGTERM, then SIGKILL after 5 s.
func (c *caddyProcess) kill() { c.Kill(5 * time.Second) }

func TestRedisTwoInstancesShareSessions(t *testing.T) {
	redis := redistest.Start(t)
	backend := issueBackend(t)
	// Separate processes keep real time, so nothing here may depend on
	// how long a step takes: the grace is far longer than the test, and
	// theft is shown with a token two rotations old, which no grace covers.
	body := refresherSite(backend, `
			store redis `+redis.URL()+`
			refresh_ttl 1h
			reuse_grace 1h`)
	a := runCaddy(t, "A", body)
	b := runCaddy(t, "B", body)

	// Started on A, refreshed on B; each accepts the other's access tokens.
	a0, r0 := mustStart(t, a.base())
	wantUser(t, "A's token on B", b.base(), a0, "user=alice role=x")
	got, c := postRefresh(t, b.base(), r0)
	b1, r1 := wantRotated(t, "A's refresh token on B", got, c)
	wantUser(t, "B's token on A", a.base(), b1, "user=alice role=x")

	// A sees B's rotation: the old token is in its grace on A too.
	got, c = postRefresh(t, a.base(), r0)
	if got.status != 200 || c["sAccessToken"] == nil || c["sRefreshToken"] != nil {
		t.Fatalf("old token on A within grace: %d %q, want 200, an access cookie and no refresh cookie",
			got.status, got.header.Values("Set-Cookie"))
	}

	// A second session goes back and forth: B, A, B.
	_, s0 := mustStart(t, b.base())
	got, c = postRefresh(t, a.base(), s0)
	_, s1 := wantRotated(t, "B's refresh token on A", got, c)
	got, c = postRefresh(t, b.base(), s1)
	_, s2 := wantRotated(t, "A's rotated token on B", got, c)
	// A reload hands the open Redis store to the new config.
	a.reload(body, true)

	// Once the successor has been rotated on B, the first token is two
	// rotations old: presented on A it is theft, and the session is revoked
	// everywhere.
	got, c = postRefresh(t, b.base(), r1)
	_, r2 := wantRotated(t, "the successor, on B", got, c)
	got, c = postRefresh(t, a.base(), r0)
	wantRefused(t, "a token two rotations old, on A", got, c)
	got, c = postRefresh(t, b.base(), r2)
	wantRefused(t, "newest token on B after theft seen on A", got, c)
	// The other session is untouched, and refreshes on A after its reload.
	got, c = postRefresh(t, a.base(), s2)
	wantRotated(t, "the other session, on A after a reload", got, c)
}

func TestBoltSessionSurvivesRestartAndReload(t *testing.T) {
	backend := issueBackend(t)
	dbFile := filepath.Join(t.TempDir(), "sessions.db")
	body := func(greeting string) string {
		return refresherSite(backend, `
			store bolt `+dbFile+`
			refresh_ttl 1h`) + `	respond /hello "` + greeting + `"
`
	}
	inst := runCaddy(t, "bolt", body("one"))
	a0, r0 := mustStart(t, inst.base())
	got, c := postRefresh(t, inst.base(), r0)
	_, r1 := wantRotated(t, "before the restart", got, c)

	inst.stop()
	if _, err := os.Stat(dbFile); err != nil {
		t.Fatalf("bolt file after stop: %v", err)
	}
	inst.start()
	wantUser(t, "access token after restart", inst.base(), a0, "user=alice role=x")
	got, c = postRefresh(t, inst.base(), r1)
	_, r2 := wantRotated(t, "refresh token after restart", got, c)
	// The rotation before the restart was kept: the first token is stale.
	got, c = postRefresh(t, inst.base(), r0)
	wantRefused(t, "token rotated before the restart", got, c)
	// ... and that reuse revoked the session, as it must.
	got, c = postRefresh(t, inst.base(), r2)
	wantRefused(t, "newest token after reuse", got, c)
	// A revoked session's access tokens are refused at once, theft included.
	if got := whoami(t, inst.base(), a0); got.status != 401 {
		t.Fatalf("access token of the session revoked as theft: %d %q, want 401", got.status, got.body)
	}

	a, r := mustStart(t, inst.base())
	for i, step := range []struct {
		greeting string
		force    bool
	}{
		{"two", false},   // a changed config
		{"two", true},    // the same config, forced
		{"three", false}, // and once more, so the old store was handed over twice
	} {
		inst.reload(body(step.greeting), step.force)
		hello := do(t, withCookie(asAPI(newRequest(t, "GET", inst.base()+"/hello", nil)), "sAccessToken", a))
		if hello.body != step.greeting {
			t.Fatalf("reload %d: /hello %d %q, want %q (config not applied)", i+1, hello.status, hello.body, step.greeting)
		}
		got, c := postRefresh(t, inst.base(), r)
		_, r = wantRotated(t, fmt.Sprintf("refresh after reload %d", i+1), got, c)
		if _, nr := mustStart(t, inst.base()); nr == "" {
			t.Fatal("no new session after reload")
		}
	}

	// And the session written after the reloads survives another restart.
	inst.stop()
	inst.start()
	got, c = postRefresh(t, inst.base(), r)
	wantRotated(t, "refresh after reloads and a restart", got, c)
}

// TestBoltValidateWhileRunning: `caddy validate` of the running config (the
// usual check before a reload) must not fail because the running Caddy holds
// the bolt file's lock, nor disturb the running instance.
func TestBoltValidateWhileRunning(t *testing.T) {
	backend := issueBackend(t)
	inst := runCaddy(t, "bolt", refresherSite(backend, `
			store bolt `+filepath.Join(t.TempDir(), "sessions.db")))
	_, r := mustStart(t, inst.base())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := inst.caddyCommand(ctx, "validate", "--config", inst.config, "--adapter", "caddyfile").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Errorf("caddy validate of the running config failed: %v\n%s", err, lines[len(lines)-1])
	}
	got, c := postRefresh(t, inst.base(), r)
	wantRotated(t, "refresh after caddy validate", got, c)
}

func TestRedisOutage(t *testing.T) {
	redis := redistest.Start(t)
	backend := issueBackend(t)
	inst := runCaddy(t, "redis", refresherSite(backend, `
			store redis `+redis.URL()+`
			refresh_ttl 1h`))
	a0, r0 := mustStart(t, inst.base())

	redis.Stop()
	began := time.Now()
	got, c := postRefresh(t, inst.base(), r0)
	took := time.Since(began)
	if got.status != 503 || got.body != `{"message":"session store unavailable"}` {
		t.Errorf("refresh with Redis down: %d %q, want 503", got.status, got.body)
	}
	if len(c) != 0 {
		t.Errorf("refresh with Redis down set cookies %q: they must be left alone", got.header.Values("Set-Cookie"))
	}
	t.Logf("refresh with Redis down: %d after %v", got.status, took.Round(time.Millisecond))
	wantUser(t, "valid access token with Redis down", inst.base(), a0, "user=alice role=x")

	got, c = startSession(t, inst.base(), nil)
	if got.status != 503 || len(c) != 0 || len(got.header.Values("Session-Gate-Issue")) != 0 || strings.Contains(got.body, "signed in") {
		t.Errorf("login with Redis down: %d %q cookies %q, want a bare 503", got.status, got.body, got.header.Values("Set-Cookie"))
	}

	redis.Restart() // empty: it ran with --save ''
	deadline := time.Now().Add(5 * time.Second)
	var r1 string
	for {
		got, c = startSession(t, inst.base(), nil)
		if got.status == 200 && c["sRefreshToken"] != nil {
			r1 = c["sRefreshToken"].Value
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session 5s after Redis came back: %d %q", got.status, got.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, c = postRefresh(t, inst.base(), r1)
	wantRotated(t, "new session after Redis came back", got, c)
	// The session from before was lost with Redis's data: 401, not 503.
	got, c = postRefresh(t, inst.base(), r0)
	wantRefused(t, "session lost with Redis's data", got, c)
}
