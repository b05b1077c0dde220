package sessiongate

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/session-gate/session_gate/internal/browsertest"
)

var updateScreenshots = flag.Bool("update", false, "rewrite docs/sessions-light.png and docs/sessions-dark.png")

// chromeWindows is the User-Agent of Chrome on Windows.
const chromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// TestDevicesBrowser: in real Chromium, a person signed in on a laptop, a
// phone and a third device opens "Your devices" on the laptop, sees all
// three (the laptop as this device), and presses "Sign out all other
// devices": the page says two were signed out, the laptop goes on, and the
// phone's next page goes through a refresh that fails, to login. The page
// is captured light and dark (with -update, into docs/).
func TestDevicesBrowser(t *testing.T) {
	browser := browsertest.Start(t)
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresher {
			access_ttl 10m
			store memory
			sessions_path /account/sessions
		}
	}
	`+aliceLogin+`
	handle {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
			<!doctype html><title>{path}</title><h1 id="msg">Hello, {http.auth.user.name} ({http.auth.user.id})</h1>
			HTML 200
	}
`)
	phone, phoneReqs := browserSignIn(t, browser, base, "phone", safariIPhone)
	// A third device, through plain HTTP: aliceLogin's form, posted.
	req := asNavigation(newRequest(t, "POST", base+"/login?redirectToPath=/account", nil))
	req.Header.Set("User-Agent", firefoxLinux)
	if got := do(t, req); got.status != 303 || cookieMap(t, got.header)["sAccessToken"] == nil {
		t.Fatalf("sign-in from Firefox: %d %q", got.status, got.body)
	}
	laptop, laptopReqs := browserSignIn(t, browser, base, "laptop", chromeWindows)

	const rows = `Array.from(document.querySelectorAll("#devices li")).map(function (li) { return li.querySelector(".name").textContent; }).join(" | ")`
	browsertest.Open(t, laptop, base+"/account/sessions")
	browsertest.WaitJS(t, laptop, where, "/account/sessions Your devices")
	browsertest.WaitJS(t, laptop, rows, "Chrome on WindowsThis device | Firefox on Linux | Safari on iPhone")
	// The script put the times in the reader's words: no "UTC" left.
	browsertest.WaitJS(t, laptop, `String(document.querySelector(".meta").textContent.indexOf("UTC"))`, "-1")
	screenshots(t, laptop)

	if err := chromedp.Do(laptop, chromedp.Click(chromedp.ID("others"))); err != nil {
		t.Fatalf("laptop: sign out all other devices: %v", err)
	}
	browsertest.WaitJS(t, laptop, where+`+" "+document.getElementById("done").textContent`,
		"/account/sessions?signed_out=2 Your devices Signed out of 2 devices.")
	browsertest.WaitJS(t, laptop, rows, "Chrome on WindowsThis device")
	checkRequests(t, laptopReqs, map[string]int{"POST /account/sessions 303": 1, "GET /account/sessions?signed_out=2 200": 1})
	browsertest.Open(t, laptop, base+"/account")
	browsertest.WaitJS(t, laptop, where, "/account Hello, Alice (alice)")

	// The phone's access token has not expired, yet its next page is
	// refused; the interstitial's refresh fails, and the phone is at login.
	browsertest.Open(t, phone, base+"/account")
	browsertest.WaitJS(t, phone, where, "/login?redirectToPath=%2Faccount Please sign in")
	checkRequests(t, phoneReqs, map[string]int{"GET /account 401": 1, "POST /refreshsession 401": 1})
}

// screenshots captures the devices page in the tab, light and dark; with
// -update it writes docs/sessions-{light,dark}.png.
func screenshots(t *testing.T, tab context.Context) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.EmulateViewport(720, 548, chromedp.EmulateScale(2))); err != nil {
		t.Fatal(err)
	}
	for scheme, background := range map[string]string{"light": "rgb(243, 244, 246)", "dark": "rgb(13, 16, 21)"} {
		shot := browsertest.Screenshot(t, tab, scheme, background)
		if *updateScreenshots {
			path := filepath.Join("docs", "sessions-"+scheme+".png")
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	}
}
