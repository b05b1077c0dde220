package sessiongate

import (
	"testing"
)

// User-Agent headers of real browsers, for sign-ins that name their device.
const (
	firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// signIn starts a session for sub from a browser that sends userAgent and
// returns its tokens.
func signIn(t *testing.T, base, sub, userAgent string) (access, refresh string) {
	t.Helper()
	req := asNavigation(newRequest(t, "GET", base+"/login", nil))
	req.Header["X-Test-Issue"] = []string{`{"sub":"` + sub + `","claims":{"role":"x"}}`}
	req.Header.Set("User-Agent", userAgent)
	got := do(t, req)
	c := cookieMap(t, got.header)
	if got.status != 200 || c["sAccessToken"] == nil || c["sRefreshToken"] == nil {
		t.Fatalf("sign-in of %s from %q: %d %q", sub, userAgent, got.status, got.body)
	}
	return c["sAccessToken"].Value, c["sRefreshToken"].Value
}
