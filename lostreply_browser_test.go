package sessiongate

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/session-gate/session_gate/internal/browsertest"
)

// replyDropper stands between the browser and Caddy. It forwards
// everything, except that the first POST to the refresh path is answered
// by Caddy (who rotates the refresh token) and then dropped: the proxy
// reads the answer and closes the browser's connection without a byte, as
// a network that fails after the server has acted does.
type replyDropper struct {
	caddy *url.URL
	proxy *httputil.ReverseProxy

	// afterDrop runs once Caddy has answered the dropped refresh, before
	// the browser's connection is closed.
	afterDrop func()

	mu         sync.Mutex
	dropped    bool
	lostCookie string // the refresh token the dropped answer carried
	refreshes  int
}

// startReplyDropper serves the proxy on a loopback port and returns it with
// the base URL the browser uses. Keep-alive is off so that every request has
// a connection of its own: a browser resends a request on its own when a
// reused connection closes without an answer, which would hide the loss.
func startReplyDropper(t *testing.T, caddyBase string, afterDrop func()) (*replyDropper, string) {
	t.Helper()
	target, err := url.Parse(caddyBase)
	if err != nil {
		t.Fatal(err)
	}
	d := &replyDropper{caddy: target, proxy: httputil.NewSingleHostReverseProxy(target), afterDrop: afterDrop}
	srv := httptest.NewUnstartedServer(d)
	srv.Config.SetKeepAlivesEnabled(false)
	srv.Start()
	t.Cleanup(srv.Close)
	// "localhost", as the site: cookies are per host, not per port, so the
	// browser sends the site's cookies through the proxy. Caddy matches the
	// forwarded Host "localhost:<proxy port>" by its host name.
	return d, "http://localhost:" + strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
}

func (d *replyDropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == DefaultRefreshPath {
		d.mu.Lock()
		d.refreshes++
		drop := !d.dropped
		d.dropped = true
		d.mu.Unlock()
		if drop {
			d.forwardAndDrop(w, r)
			return
		}
	}
	d.proxy.ServeHTTP(w, r)
}

func (d *replyDropper) forwardAndDrop(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = d.caddy.Scheme, d.caddy.Host
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		d.mu.Lock()
		for _, c := range resp.Cookies() {
			if c.Name == "sRefreshToken" {
				d.lostCookie = c.Value
			}
		}
		d.mu.Unlock()
	}
	d.afterDrop()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// state returns what the proxy saw: the lost refresh token and how many
// refreshes came through.
func (d *replyDropper) state() (lost string, refreshes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lostCookie, d.refreshes
}

// Issue 9, defect 7: a refresh whose reply is lost on the way to the
// browser does not sign the person out. The interstitial retries with the
// refresh token it still has; past reuse_grace, with the lost successor
// never presented, the refresher rotates again and the page loads. A thief
// who replays the old token after the victim has used its successor is
// refused, and the session is revoked, so the victim's next refresh sends
// them to sign in.
func TestBrowserLostRefreshReply(t *testing.T) {
	const grace = time.Second
	advance := fakeClock(t)
	caddyBase := site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresher {
			reuse_grace `+grace.String()+`
			store memory
		}
	}
	`+aliceLogin+`
	handle {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>{path}</title><h1 id="msg">Hello, {http.auth.user.name}</h1>
			HTML 200
	}
`)
	// While the answer is being lost, the gate's clock passes the grace:
	// the browser's retry is then the lost-reply case, whenever it comes.
	dropper, base := startReplyDropper(t, caddyBase, func() { advance(grace + time.Second) })
	browser := browsertest.Start(t)
	tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
	reqs := browsertest.RecordRequests(t, tab)

	browsertest.Open(t, tab, base+"/account")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Faccount Please sign in")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("signin"))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, tab, where, "/account Hello, Alice")
	r0 := cookies(t, tab, base)["sRefreshToken"]
	if r0 == "" {
		t.Fatal("no refresh cookie after login")
	}

	// The access token has expired: the interstitial refreshes, Caddy
	// rotates, the answer is lost. The interstitial's own retry sends r0
	// again, past the grace, and gets a new token.
	setCookie(t, tab, base, "sAccessToken", token(t, expiredClaims()), "/")
	browsertest.Open(t, tab, base+"/account?n=1")
	browsertest.WaitJS(t, tab, where, "/account?n=1 Hello, Alice")
	lost, refreshes := dropper.state()
	if lost == "" || lost == r0 {
		t.Fatalf("the dropped answer carried refresh token %q: Caddy did not rotate", lost)
	}
	if refreshes != 2 {
		t.Fatalf("%d refreshes reached the proxy, want the dropped one and the retry", refreshes)
	}
	r1 := cookies(t, tab, base)["sRefreshToken"]
	switch r1 {
	case r0:
		t.Fatal("the refresh cookie is still the old token: the retry was answered as within the grace, not rotated")
	case lost, "":
		t.Fatalf("the refresh cookie after the retry is %q, want a new token", r1)
	}
	checkRequests(t, reqs, map[string]int{
		"POST /refreshsession failed": 1,
		"POST /refreshsession 200":    1,
		"GET /account?n=1 200":        1,
	})

	// The victim refreshes with the new token (its successor is used)...
	setCookie(t, tab, base, "sAccessToken", token(t, expiredClaims()), "/")
	browsertest.Open(t, tab, base+"/account?n=2")
	browsertest.WaitJS(t, tab, where, "/account?n=2 Hello, Alice")
	if r2 := cookies(t, tab, base)["sRefreshToken"]; r2 == r1 || r2 == "" {
		t.Fatal("the refresh with the re-rotated token did not rotate it")
	}

	// ... then a thief replays the old token: theft, 401, session revoked.
	got, c := postRefresh(t, caddyBase, r0)
	wantRefused(t, "the thief's replay of the old token", got, c)

	// The victim's next refresh is refused: to sign in.
	setCookie(t, tab, base, "sAccessToken", token(t, expiredClaims()), "/")
	browsertest.Open(t, tab, base+"/account?n=3")
	browsertest.WaitJS(t, tab, where, "/login?redirectToPath=%2Faccount%3Fn%3D3 Please sign in")
	checkRequests(t, reqs, map[string]int{
		"POST /refreshsession 200": 2,
		"POST /refreshsession 401": 1,
	})
}
