package sessiongate

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// caddy_session_gate_refreshes_total counts each answer of the refresher
// once, under its outcome; a lost reply's token rotated again is
// "rerotated", not "ok".
func TestMetricsCountRefreshes(t *testing.T) {
	advance := fakeClock(t)
	base := site(t, refresherSite(issueBackend(t), "store memory\nreuse_grace 1s"))
	outcomes := []string{"ok", "rerotated", "refused", "session_started", "signed_out", "store_unavailable"}
	before := map[string]float64{}
	for _, o := range outcomes {
		before[o] = testutil.ToFloat64(refreshesTotal.WithLabelValues(o))
	}
	access, r0 := mustStart(t, base)                          // session_started
	_, c := postRefresh(t, base, r0)                          // ok
	postRefresh(t, base, "not-a-token")                       // refused
	postRefresh(t, base, "")                                  // refused
	got, c2 := postRefresh(t, base, c["sRefreshToken"].Value) // ok
	_, r2 := wantRotated(t, "second refresh", got, c2)
	postRefresh(t, base, r2)            // ok; its reply is lost
	advance(2 * time.Second)            // past the grace
	got, c3 := postRefresh(t, base, r2) // rerotated
	wantRotated(t, "the lost reply's token again", got, c3)
	do(t, withCookie(asAPI(newRequest(t, "POST", base+"/signout", nil)), "sAccessToken", access)) // signed_out
	for o, want := range map[string]float64{"ok": 3, "rerotated": 1, "refused": 2, "session_started": 1, "signed_out": 1, "store_unavailable": 0} {
		if got := testutil.ToFloat64(refreshesTotal.WithLabelValues(o)) - before[o]; got != want {
			t.Errorf("%s: counted %v, want %v", o, got, want)
		}
	}
}

// Sign-out while the store cannot be reached answers 503 and leaves the
// cookies alone: the session may well be fine, and the person can retry.
func TestSignoutWithStoreDownIs503(t *testing.T) {
	before := testutil.ToFloat64(refreshesTotal.WithLabelValues("signed_out"))
	base := site(t, refresherSite(issueBackend(t), fmt.Sprintf("store redis redis://127.0.0.1:%d", freePort(t))))
	claims := validClaims()
	claims["sid"] = "0123456789abcdef0123456789abcdef"
	for _, nav := range []bool{false, true} {
		req := withCookie(newRequest(t, "POST", base+"/signout", nil), "sAccessToken", token(t, claims))
		if nav {
			asNavigation(req)
		} else {
			asAPI(req)
		}
		got := do(t, req)
		if got.status != http.StatusServiceUnavailable || got.body != `{"message":"session store unavailable"}` {
			t.Errorf("navigation %v: %d %q, want 503 session store unavailable", nav, got.status, got.body)
		}
		if v := got.header.Values("Set-Cookie"); len(v) != 0 {
			t.Errorf("navigation %v: cookies touched with the store down: %q", nav, v)
		}
	}
	if got := testutil.ToFloat64(refreshesTotal.WithLabelValues("signed_out")) - before; got != 0 {
		t.Errorf("a failed sign-out counted as signed_out (%v)", got)
	}
}

// The gate configured in JSON (not through the Caddyfile adapter) behaves
// the same: a valid token passes with its claims, an expired navigation
// gets the interstitial, a missing one goes to login.
func TestJSONConfiguration(t *testing.T) {
	site(t, `respond "warm-up"`) // the Caddyfile tests' Caddy, storage and admin port
	port := freePort(t)
	cfg := fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d"},
	"logging": {"logs": {"default": {"level": "WARN"}}},
	"storage": {"module": "file_system", "root": %q},
	"apps": {"http": {"servers": {"s": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [
			{"handler": "session_gate", "secrets": [%q], "login_url": "/signin", "public": ["/open/*"], "token_cache": -1},
			{"handler": "static_response", "body": "user={http.auth.user.id} role={http.auth.user.role}"}
		]}]
	}}}}
}`, adminPort(), caddyStorage(), port, testSecret)
	caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort()}).InitServer(cfg, "json")
	base := fmt.Sprintf("http://localhost:%d", port)

	got := do(t, asAPI(withCookie(newRequest(t, "GET", base+"/x", nil), "sAccessToken", token(t, validClaims()))))
	if got.status != 200 || got.body != "user=alice role=admin" {
		t.Errorf("valid: %d %q", got.status, got.body)
	}
	got = do(t, asNavigation(withCookie(newRequest(t, "GET", base+"/x", nil), "sAccessToken", token(t, expiredClaims()))))
	if got.status != 401 || !strings.Contains(got.header.Get("Content-Type"), "text/html") {
		t.Errorf("expired navigation: %d %q, want the interstitial", got.status, got.header.Get("Content-Type"))
	}
	got = do(t, asNavigation(newRequest(t, "GET", base+"/x?a=1", nil)))
	if got.status != 302 || got.header.Get("Location") != "/signin?redirectToPath=%2Fx%3Fa%3D1" {
		t.Errorf("missing: %d Location %q", got.status, got.header.Get("Location"))
	}
	if got = do(t, asAPI(newRequest(t, "GET", base+"/open/page", nil))); got.status != 200 {
		t.Errorf("public path: %d", got.status)
	}
}

// A custom interstitial template, loaded by the module, is what an expired
// navigation gets, with its fields filled in and the response's nonce.
func TestCustomInterstitialThroughTheModule(t *testing.T) {
	file := filepath.Join(t.TempDir(), "page.html")
	tmpl := `<!doctype html><title>custom</title><p id="m">Refreshing {{.ReturnPath}} via {{.RefreshPath}} ({{.Method}}) else {{.LoginURL}}</p>` +
		`{{range .FormFields}}<i>{{.Name}}={{.Value}}</i>{{end}}<script nonce="{{.Nonce}}">/*x*/</script>`
	if err := os.WriteFile(file, []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		interstitial `+file+`
	}
	respond "page"
`)
	expired := token(t, expiredClaims())
	got := do(t, asNavigation(withCookie(newRequest(t, "GET", base+"/docs?x=1", nil), "sAccessToken", expired)))
	want := `Refreshing /docs?x=1 via /refreshsession (GET) else /login?redirectToPath=%2Fdocs%3Fx%3D1`
	if got.status != 401 || !strings.Contains(got.body, want) {
		t.Fatalf("expired navigation: %d %q, want the custom page with %q", got.status, got.body, want)
	}
	csp := got.header.Get("Content-Security-Policy")
	nonce := strings.TrimSuffix(strings.SplitN(strings.SplitN(csp, "'nonce-", 2)[1], "'", 2)[0], "'")
	if nonce == "" || !strings.Contains(got.body, `nonce="`+nonce+`"`) {
		t.Errorf("the page's nonce does not match the CSP %q", csp)
	}
	req := asNavigation(withCookie(newRequest(t, "POST", base+"/save", strings.NewReader("a=1&b=%3Cx%3E")), "sAccessToken", expired))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	got = do(t, req)
	if !strings.Contains(got.body, "<i>a=1</i><i>b=&lt;x&gt;</i>") || !strings.Contains(got.body, "(POST)") {
		t.Errorf("form POST: %q, want its fields escaped in the page", got.body)
	}

}
