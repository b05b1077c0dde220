package sessiongate

import (
	"net/http"
	"testing"
)

// Cookies carry Secure whenever the browser reached the site over https,
// also through a TLS-terminating proxy that trusted_proxies trusts; the
// X-Forwarded-Proto of an untrusted client counts for nothing
// (docs/behaviour.md, "Cookies").
func TestCookiesSecureBehindTrustedTLSProxy(t *testing.T) {
	backend := issueBackend(t)
	for _, tc := range []struct {
		name, global, settings, proto string
		want                          bool
	}{
		{"trusted proxy says https", "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", "", "https", true},
		{"trusted proxy says http", "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", "", "http", false},
		{"untrusted client says https", "", "", "https", false},
		{"secure_cookies on over plain http", "", "secure_cookies on", "", true},
		{"secure_cookies off behind a trusted https proxy", "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", "secure_cookies off", "https", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := siteWithGlobal(t, tc.global, refresherSite(backend, "store memory\n"+tc.settings))
			req := asNavigation(newRequest(t, "GET", base+"/login", nil))
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			got := do(t, req)
			c := cookieMap(t, got.header)
			if len(c) != 3 {
				t.Fatalf("login: %d, cookies %q", got.status, got.header.Values("Set-Cookie"))
			}
			for name, k := range c {
				if k.Secure != tc.want {
					t.Errorf("%s: Secure %v, want %v", name, k.Secure, tc.want)
				}
			}
		})
	}
}

// cookie_domain puts Domain= on every cookie the refresher sets and clears,
// so that sibling sites share the session.
func TestCookieDomainOnEveryRefresherCookie(t *testing.T) {
	base := site(t, refresherSite(issueBackend(t), "store memory\ncookie_domain example.test"))
	got, c := startSession(t, base, nil)
	_, refreshToken := mustStart(t, base)
	refreshed, rc := postRefresh(t, base, refreshToken)
	refused, cleared := postRefresh(t, base, "not-a-refresh-token")
	req := asAPI(newRequest(t, "POST", base+"/signout", nil))
	signout := do(t, req)
	for what, set := range map[string]struct {
		r reply
		c map[string]*http.Cookie
	}{
		"session start": {got, c},
		"refresh":       {refreshed, rc},
		"refused":       {refused, cleared},
		"sign-out":      {signout, cookieMap(t, signout.header)},
	} {
		if len(set.c) != 3 {
			t.Errorf("%s: %d cookies, want 3: %q", what, len(set.c), set.r.header.Values("Set-Cookie"))
		}
		for name, k := range set.c {
			if k.Domain != "example.test" {
				t.Errorf("%s: %s Domain %q, want example.test", what, name, k.Domain)
			}
		}
	}
}
